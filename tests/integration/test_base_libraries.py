"""Population and legal-person libraries on two generated batches, scored against the truth.

Batch 1 is ingested and built, then batch 2 (a month of moves, marriages, births, deaths and
new enterprises) is ingested and built incrementally; a full rebuild over the same bronze
must give the same tables. Expected values come from the generator's `_truth/` files.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from datong import tables
from datong.contracts import load_resources
from datong.query import run
from datong.storage import spark_location
from jobs.build import LEDGER, ORDER, build
from jobs.keyless import linkage_decisions
from jobs.population import LINKABLE
from tests.integration.conftest import BATCHES, SNAPSHOTS, as_of, table_rows, truth_rows

PERSON_FIELDS = ["name", "gender", "ethnicity", "birth_date", "household_id", "relation_to_head",
                 "division_code", "marital_status", "spouse_id", "death_date"]  # fmt: skip
ENTITY_FIELDS = ["name", "authority", "entity_type", "legal_representative_id", "division_code",
                 "established", "status", "deregistered"]  # fmt: skip

pytestmark = pytest.mark.integration

# The truth's conflict kinds in these libraries: (truth attribute, checking table) → ours.
CONFLICT_KINDS = {
    "deceased_still_active": "deceased",
    "name_variant": "name",
    "birth_date_off_by_one": "birth_date",
    "stale_address": "address",
}
VIEW_OF_TABLE = {
    "bronze.household_register": "household",
    "bronze.social_insurance": "insurance",
    "bronze.natural_person_taxpayer": "tax",
    "bronze.student_enrollment": "school",
    "bronze.death_registration": "death",
}


def _truth_conflicts(landing: Path, batch: str) -> set[tuple[str, str, str]]:
    """The conflicts standing after ``batch``.

    Each batch's truth lists the conflicts visible in that batch's deliveries. A source that
    delivers full snapshots shows all its standing conflicts every time; one that delivers
    only changes keeps an earlier batch's conflict standing (silver still holds that row).
    """
    full = {name for name, r in load_resources().items() if r.delivery.mode == "full"}
    standing: set[tuple[str, str, str, str]] = set()
    for current in BATCHES[: BATCHES.index(batch) + 1]:
        lines = (landing / "_truth" / current / "conflicts.jsonl").read_text().splitlines()
        seen = {
            (item["subject"], CONFLICT_KINDS[item["kind"]], VIEW_OF_TABLE[item["source"]],
             item["source"])
            for item in map(json.loads, lines)
            if item["kind"] in CONFLICT_KINDS
        }  # fmt: skip
        standing = {c for c in standing if c[3] not in full} | seen
    return {c[:3] for c in standing}


@pytest.mark.parametrize("batch", BATCHES)
def test_golden_persons_match_the_truth(library_landing, libraries_built, batch):
    _, snapshots = libraries_built
    gold = snapshots[batch]["person"]
    truth = {row["person_id"]: row for row in truth_rows(library_landing, batch, "person.csv")}
    correct = [pid for pid, row in gold.items()
               if pid in truth and all(row[f] == truth[pid][f] for f in PERSON_FIELDS)]  # fmt: skip
    # A person whose household record was quarantined at ingest cannot be in gold this batch
    # (identity comes only from 公安); that record is in lake.quarantine with its reason.
    missing = set(truth) - set(gold)
    assert len(missing) <= snapshots[batch]["quarantined"]["bronze.household_register"]
    precision = len(correct) / len(gold)
    recall = len(correct) / (len(truth) - len(missing))
    assert precision >= 0.999, precision
    assert recall >= 0.999, recall


@pytest.mark.parametrize("batch", BATCHES)
def test_golden_legal_persons_match_the_truth(library_landing, libraries_built, batch):
    _, snapshots = libraries_built
    gold = snapshots[batch]["entity"]
    truth = {
        row["credit_code"]: row for row in truth_rows(library_landing, batch, "legal_person.csv")
    }
    # 编办 and 民政 registers carry no industry, and 编办's no deregistration date.
    unknown = {"9": [], "5": ["industry"], "1": ["industry", "deregistered"]}
    fields = {
        code: [f for f in ENTITY_FIELDS + ["industry"] if f not in unknown[row["authority"]]]
        for code, row in truth.items()
    }
    correct = [
        code for code, row in gold.items()
        if code in truth and all(row[f] == truth[code][f] for f in fields[code])
    ]  # fmt: skip
    missing = set(truth) - set(gold)
    # Registers deliver changes only: a record quarantined in any batch so far may be missing.
    quarantined = sum(
        snapshots[b]["quarantined"][name]
        for b in BATCHES[: BATCHES.index(batch) + 1]
        for name in ("bronze.enterprise_registration", "bronze.public_institution",
                     "bronze.social_organization")
    )  # fmt: skip
    assert len(missing) <= quarantined
    assert len(correct) / len(gold) >= 0.999
    assert len(correct) / (len(truth) - len(missing)) >= 0.999
    representatives = [row for row in gold.values() if row["legal_representative_linked"]]
    assert len(representatives) >= 0.99 * len(gold)


@pytest.mark.parametrize("batch", BATCHES)
def test_conflicts_match_the_truth(library_landing, libraries_built, batch):
    _, snapshots = libraries_built
    expected = _truth_conflicts(library_landing, batch)
    found = snapshots[batch]["conflicts"]
    assert expected, "the generator injected no conflict: the test would prove nothing"
    true_positive = found & expected
    assert len(true_positive) / len(found) >= 0.99, found - expected
    assert len(true_positive) / len(expected) >= 0.99, expected - found


def test_worklist_sends_each_conflict_to_its_department(libraries_built, spark):
    settings, snapshots = libraries_built
    worklist = tables.read(spark, settings, "population.correction_worklist").collect()
    departments = {"household": "public_security", "tax": "tax", "insurance": "human_resources",
                   "school": "education", "death": "civil_affairs"}  # fmt: skip
    expected = {(s, a, departments[src]) for s, a, src in snapshots["batch-0002"]["conflicts"]}
    assert {(r["subject"], r["attribute"], r["department"]) for r in worklist} == expected


def test_history_answers_as_of_questions(library_landing, libraries_built, spark):
    """A person whose household address changed between the batches has two versions."""
    settings, _ = libraries_built
    before = {r["person_id"]: r for r in truth_rows(library_landing, "batch-0001", "person.csv")}
    after = {r["person_id"]: r for r in truth_rows(library_landing, "batch-0002", "person.csv")}
    moved = [p for p in before if p in after and before[p]["address_id"] != after[p]["address_id"]]
    assert moved, "no move in batch 2: the test would prove nothing"
    history = tables.read(spark, settings, "population.person_history")
    for person_id in moved[:5]:
        versions = sorted(
            (r for r in history.where(history.person_id == person_id).collect()),
            key=lambda r: r["valid_from"],
        )
        assert len(versions) >= 2
        old, new = versions[-2], versions[-1]
        assert old["valid_to"] == new["valid_from"] and new["valid_to"] is None
        assert old["division_code"] == before[person_id]["division_code"]
        assert new["division_code"] == after[person_id]["division_code"]
        # As of the day before the new version, the old one is the answer.
        day_before = new["valid_from"] - dt.timedelta(days=1)
        as_of = [v for v in versions if v["valid_from"] <= day_before
                 and (v["valid_to"] is None or v["valid_to"] > day_before)]  # fmt: skip
        assert as_of == [old]


def test_incremental_build_equals_full_rebuild(libraries_built, spark):
    settings, snapshots = libraries_built
    result = build(list(ORDER), settings, spark, full=True, register=False,
                   as_of=as_of("batch-0002"))  # fmt: skip
    assert result.batches == list(BATCHES)
    # The build date each derived row was last changed on is the one thing a rebuild changes.
    dated = ("graded_on", "status_as_of")

    def undated(rows: dict) -> dict:
        return {k: {c: v for c, v in row.items() if c not in dated} for k, row in rows.items()}

    for label, (name, key) in SNAPSHOTS.items():
        rebuilt = table_rows(spark, settings, name, *key)
        assert undated(rebuilt) == undated(snapshots["batch-0002"][label]), name
    conflicts = {
        (r["subject"], r["attribute"], r["source"])
        for r in tables.read(spark, settings, "population.conflict").collect()
    }
    assert conflicts == snapshots["batch-0002"]["conflicts"]
    # The tables were written anew at the same locations: Trino reads the new ones.
    for name in ("population.person", "license.license", "geo.division"):
        [(count,)] = run(settings, f"SELECT count(*) FROM lake.{name}").rows
        assert count == tables.read(spark, settings, name).count(), name
    # Rebuilt from every batch: the ledger holds each consumed file once per build.
    ledger = tables.read(spark, settings, LEDGER)
    assert ledger.select("source_file").distinct().count() == ledger.count()
    # Nothing new: a second incremental build is a no-op.
    assert build(["population"], settings, spark, register=False).batches == []
    # The full build compared every legal person with the population library. Nothing was
    # committed to that library since, so the next build including legal persons does not.
    assert result.relinked_all
    assert not build(["legal_person"], settings, spark, register=False).relinked_all
    location = spark_location(settings, "population.person")
    spark.sql(f"ALTER TABLE delta.`{location}` SET TBLPROPERTIES ('datong.test' = 'touched')")
    assert build(["legal_person"], settings, spark, register=False).relinked_all


def test_rows_with_invalid_ids_are_linked_to_the_right_person(
    library_landing, libraries_built, spark
):
    """Quarantined for a wrong check character, still plainly someone: Splink links them."""
    settings, _ = libraries_built
    expected = {}
    for batch in BATCHES:
        lines = (library_landing / "_truth" / batch / "errors.jsonl").read_text().splitlines()
        for item in map(json.loads, lines):
            if (
                item["kind"] == "invalid_check_character"
                and item["field"] == "person_id"
                and item["resource"] in LINKABLE
            ):
                expected[(item["file"], item["record"])] = item["true_value"]
    assert expected, "no invalid person ID injected: the test would prove nothing"
    rows = linkage_decisions(spark, settings).collect()
    decided = {(r["source_file"], r["row_number"]): r for r in rows}
    assert set(decided) == set(expected)  # every candidate has exactly one current decision
    linked = {k: r["person_id"] for k, r in decided.items() if r["decision"] == "linked"}
    assert linked, "nothing linked"
    wrong = {k: (v, expected[k]) for k, v in linked.items() if v != expected[k]}
    assert not wrong

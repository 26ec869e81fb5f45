"""Population and legal-person libraries on two generated batches, scored against the truth.

Batch 1 is ingested and built, then batch 2 (a month of moves, marriages, births, deaths and
new enterprises) is ingested and built incrementally; a full rebuild over the same bronze
must give the same tables. Expected values come from the generator's `_truth/` files.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import pytest

from datong import tables
from datong.contracts import load_resources
from datong.settings import Settings
from datong.sources import load_sources
from jobs import ingest
from jobs.build import LEDGER, build
from jobs.population import LINKABLE
from synthetic.errors import ErrorRates
from synthetic.generate import Options, generate

pytestmark = pytest.mark.integration

SOURCES = [
    "public_security.household_register",
    "civil_affairs.death_registration",
    "civil_affairs.marriage_registration",
    "human_resources.social_insurance",
    "education.student_enrollment",
    "tax.natural_person_taxpayer",
    "market_regulation.enterprise_registration",
    "institution_staffing.public_institution",
    "civil_affairs.social_organization",
    "tax.enterprise_taxpayer",
]
PERSON_FIELDS = ["name", "gender", "ethnicity", "birth_date", "household_id", "relation_to_head",
                 "division_code", "marital_status", "spouse_id", "death_date"]  # fmt: skip
ENTITY_FIELDS = ["name", "authority", "entity_type", "legal_representative_id", "division_code",
                 "established", "status", "deregistered"]  # fmt: skip
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
BATCHES = ("batch-0001", "batch-0002")


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("libraries-landing")
    rates = ErrorRates.load()
    # Whole-file failures are ingest's business (tested there); here every source lands.
    rates = type(rates)(**{**rates.__dict__, "truncated_files": 0, "wrong_encoding_files": 0})
    for batch in (1, 2):
        options = Options(persons=1500, seed=7, out=out, rates=rates, batch=batch,
                          households_per_chunk=500)  # fmt: skip
        generate(options)
    return out


def _ingest(spark, settings: Settings, landing: Path, batch: str) -> dict[str, int]:
    """Every source's delivery of ``batch``; returns quarantined rows per resource."""
    sources, resources = load_sources(), load_resources()
    quarantined = {}
    for source_id in SOURCES:
        source = sources[source_id]
        resource = resources[source.resource]
        department, table = source_id.split(".")
        for path in sorted((landing / department / table / batch).iterdir()):
            result = ingest.ingest_file(spark, settings, source, resource, batch, path, landing)
            ingest.write_ledger(spark, settings, [result])
            assert result.status == "succeeded", result.error
            quarantined[resource.name] = result.quarantined
    return quarantined


def _rows(spark, settings: Settings, name: str, key: str) -> dict[str, dict]:
    frame = tables.read(spark, settings, name)
    out = {}
    for row in frame.drop("_provenance").collect():
        values = {k: ("" if v is None else str(v)) for k, v in row.asDict().items()}
        out[values[key]] = values
    return out


def _truth(landing: Path, batch: str, name: str) -> list[dict]:
    with (landing / "_truth" / batch / name).open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


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


@pytest.fixture(scope="module")
def built(landing, spark, tmp_path_factory):
    """Incremental builds after each batch; the tables as they were after each."""
    settings = Settings(
        state_dir=tmp_path_factory.mktemp("libraries-state"), spark_master="local[2]"
    )
    snapshots = {}
    for batch in BATCHES:
        quarantined = _ingest(spark, settings, landing, batch)
        result = build(["population", "legal_person"], settings, spark, register=False)
        assert result.batches == [batch]
        snapshots[batch] = {
            "quarantined": quarantined,
            "result": result,
            "person": _rows(spark, settings, "population.person", "person_id"),
            "entity": _rows(spark, settings, "legal_person.entity", "credit_code"),
            "conflicts": {
                (r["subject"], r["attribute"], r["source"])
                for r in tables.read(spark, settings, "population.conflict").collect()
            },
        }
    return settings, snapshots


@pytest.mark.parametrize("batch", BATCHES)
def test_golden_persons_match_the_truth(landing, built, batch):
    _, snapshots = built
    gold = snapshots[batch]["person"]
    truth = {row["person_id"]: row for row in _truth(landing, batch, "person.csv")}
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
def test_golden_legal_persons_match_the_truth(landing, built, batch):
    _, snapshots = built
    gold = snapshots[batch]["entity"]
    truth = {row["credit_code"]: row for row in _truth(landing, batch, "legal_person.csv")}
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
def test_conflicts_match_the_truth(landing, built, batch):
    _, snapshots = built
    expected = _truth_conflicts(landing, batch)
    found = snapshots[batch]["conflicts"]
    assert expected, "the generator injected no conflict: the test would prove nothing"
    true_positive = found & expected
    assert len(true_positive) / len(found) >= 0.99, found - expected
    assert len(true_positive) / len(expected) >= 0.99, expected - found


def test_worklist_sends_each_conflict_to_its_department(built, spark):
    settings, snapshots = built
    worklist = tables.read(spark, settings, "population.correction_worklist").collect()
    departments = {"household": "public_security", "tax": "tax", "insurance": "human_resources",
                   "school": "education", "death": "civil_affairs"}  # fmt: skip
    expected = {(s, a, departments[src]) for s, a, src in snapshots["batch-0002"]["conflicts"]}
    assert {(r["subject"], r["attribute"], r["department"]) for r in worklist} == expected


def test_history_answers_as_of_questions(landing, built, spark):
    """A person whose household address changed between the batches has two versions."""
    settings, _ = built
    before = {r["person_id"]: r for r in _truth(landing, "batch-0001", "person.csv")}
    after = {r["person_id"]: r for r in _truth(landing, "batch-0002", "person.csv")}
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


def test_incremental_build_equals_full_rebuild(built, spark):
    settings, snapshots = built
    result = build(["population", "legal_person"], settings, spark, full=True, register=False)
    assert result.batches == list(BATCHES)
    assert (
        _rows(spark, settings, "population.person", "person_id")
        == snapshots["batch-0002"]["person"]
    )
    assert (
        _rows(spark, settings, "legal_person.entity", "credit_code")
        == snapshots["batch-0002"]["entity"]
    )
    conflicts = {
        (r["subject"], r["attribute"], r["source"])
        for r in tables.read(spark, settings, "population.conflict").collect()
    }
    assert conflicts == snapshots["batch-0002"]["conflicts"]
    # Rebuilt from every batch: the ledger holds each consumed file once per build.
    ledger = tables.read(spark, settings, LEDGER)
    assert ledger.select("source_file").distinct().count() == ledger.count()
    # Nothing new: a second incremental build is a no-op.
    assert build(["population"], settings, spark, register=False).batches == []


def test_rows_with_invalid_ids_are_linked_to_the_right_person(landing, built, spark):
    """Quarantined for a wrong check character, still plainly someone: Splink links them."""
    settings, _ = built
    expected = {}
    for batch in BATCHES:
        lines = (landing / "_truth" / batch / "errors.jsonl").read_text().splitlines()
        for item in map(json.loads, lines):
            if (
                item["kind"] == "invalid_check_character"
                and item["field"] == "person_id"
                and item["resource"] in LINKABLE
            ):
                expected[(item["file"], item["record"])] = item["true_value"]
    assert expected, "no invalid person ID injected: the test would prove nothing"
    rows = tables.read(spark, settings, "population.linkage").collect()
    decided = {(r["source_file"], r["row_number"]): r for r in rows}
    assert set(decided) == set(expected)  # every candidate has exactly one decision
    linked = {k: r["person_id"] for k, r in decided.items() if r["decision"] == "linked"}
    assert linked, "nothing linked"
    wrong = {k: (v, expected[k]) for k, v in linked.items() if v != expected[k]}
    assert not wrong

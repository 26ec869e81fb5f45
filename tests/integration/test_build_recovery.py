"""A build that fails part-way through a batch is completed by the next build, as if whole.

The population library of the shared generated province (``library_landing``): batch 1
built; batch 2's build fails in one of its writes after silver and some golden tables have
committed; the next build must rebuild the same subjects, so its tables equal a full
rebuild's. Expected values come from the full rebuild over the same bronze, not from the
failed build.
"""

from __future__ import annotations

import pytest

from datong import tables
from datong.contracts import load_resources
from datong.sources import load_sources
from jobs import golden, ingest
from jobs.build import LEDGER, build, library_tables
from tests.conftest import make_settings
from tests.integration.conftest import table_rows

pytestmark = pytest.mark.integration

POPULATION_SOURCES = [
    "public_security.household_register",
    "civil_affairs.death_registration",
    "civil_affairs.marriage_registration",
    "human_resources.social_insurance",
    "education.student_enrollment",
    "tax.natural_person_taxpayer",
]

TABLES = [
    "population.person",
    "population.person_history",
    "population.conflict",
    "population.correction_worklist",
    "population.relationship",
    "population.unmatched",
]


def _ingest(spark, settings, landing, batch: str) -> None:
    sources, resources = load_sources(), load_resources()
    for source_id in POPULATION_SOURCES:
        source = sources[source_id]
        department, table = source_id.split(".")
        for path in sorted((landing / department / table / batch).iterdir()):
            result = ingest.ingest_file(
                spark, settings, source, resources[source.resource], batch, path, landing
            )
            ingest.write_ledger(spark, settings, [result])
            assert result.status == "succeeded", result.error


def _snapshot(spark, settings) -> dict[str, list[tuple[str, ...]]]:
    """Each table's rows as sorted tuples of strings (provenance left out)."""
    out = {}
    for name in TABLES:
        frame = tables.read(spark, settings, name).drop("_provenance")
        out[name] = sorted(
            tuple("" if v is None else str(v) for v in row) for row in frame.collect()
        )
    return out


def test_a_batch_whose_build_failed_part_way_is_rebuilt_whole(
    library_landing, spark, tmp_path, s3_test_settings, monkeypatch
):
    settings = make_settings(tmp_path, "file", s3_test_settings)
    assert set(TABLES) <= set(library_tables("population"))
    _ingest(spark, settings, library_landing, "batch-0001")
    assert build(["population"], settings, spark, register=False).batches == ["batch-0001"]
    first = _snapshot(spark, settings)
    _ingest(spark, settings, library_landing, "batch-0002")

    merge_history = golden.merge_history

    def fails(spark_, settings_, name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "population.person_history":
            raise RuntimeError("injected: the history write fails")
        return merge_history(spark_, settings_, name, *args, **kwargs)

    monkeypatch.setattr(golden, "merge_history", fails)
    with pytest.raises(RuntimeError, match="injected"):
        build(["population"], settings, spark, register=False)
    monkeypatch.setattr(golden, "merge_history", merge_history)
    failed = _snapshot(spark, settings)
    # Part-way: the persons were written, their history was not.
    assert failed["population.person"] != first["population.person"]
    assert failed["population.person_history"] == first["population.person_history"]
    ledger = table_rows(spark, settings, LEDGER, "bronze", "source_file")
    assert {row["batch_id"] for row in ledger.values()} == {"batch-0001"}

    rerun = build(["population"], settings, spark, register=False)
    assert rerun.batches == ["batch-0002"]
    [population] = [r for r in rerun.results if r.library == "population"]
    assert population.affected > 0
    completed = _snapshot(spark, settings)

    full = build(["population"], settings, spark, full=True, register=False)
    assert full.batches == ["batch-0001", "batch-0002"]
    rebuilt = _snapshot(spark, settings)
    for name in TABLES:
        # This province's population sources name no one outside the library.
        assert rebuilt[name] or name == "population.unmatched", name
        assert completed[name] == rebuilt[name], name

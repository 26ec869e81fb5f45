"""Ingest from a department's own database: the second pull takes only the new rows.

And a build after each pull takes that pull's rows into silver: a pull is its own file.
"""

from __future__ import annotations

import psycopg
import pytest

from datong import tables
from datong.services.postgres import ensure_database
from datong.settings import Settings
from jobs.build import build
from jobs.ingest import LEDGER, run_source
from synthetic.generate import Options, generate

pytestmark = pytest.mark.integration
SOURCE = "human_resources.social_insurance"


def _count(url: str) -> int:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as connection:
        return connection.execute(
            "SELECT count(*) FROM human_resources.social_insurance"
        ).fetchone()[0]


def _department(postgres_settings, monkeypatch, tmp_path, database: str, persons: int, seed: int):
    """A department database with a generated province in it, and an empty lake."""
    url = ensure_database(postgres_settings, database)
    monkeypatch.setenv("DATONG_SOURCE_HUMAN_RESOURCES_URL", url)
    generate(Options(persons=persons, seed=seed, out=tmp_path / "landing", db_url=url))
    return url, Settings(state_dir=tmp_path / "state", spark_master="local[2]")


def test_jdbc_pull_is_incremental(postgres_settings, spark, tmp_path, monkeypatch):
    url, lake = _department(postgres_settings, monkeypatch, tmp_path, "dept_hr_ingest", 900, 13)
    first_total = _count(url)

    [first] = run_source(SOURCE, settings=lake, spark=spark, register=False, validate=False)
    assert first.status == "succeeded", first.error
    assert first.rows_read == first_total > 0
    assert first.accepted + first.quarantined == first.rows_read
    assert build(["population"], lake, spark, register=False).batches == [first.batch_id]

    generate(Options(persons=900, seed=13, out=tmp_path / "landing", db_url=url, batch=2))
    added = _count(url) - first_total
    [second] = run_source(SOURCE, settings=lake, spark=spark, register=False, validate=False)
    assert second.status == "succeeded" and second.rows_read == added > 0
    assert second.watermark_mark > first.watermark_mark
    assert second.file != first.file
    assert build(["population"], lake, spark, register=False).batches == [second.batch_id]

    [third] = run_source(SOURCE, settings=lake, spark=spark, register=False, validate=False)
    assert third.rows_read == 0
    bronze = tables.read(spark, lake, "bronze.social_insurance").count()
    assert bronze == first.accepted + second.accepted
    ledger = tables.read(spark, lake, LEDGER).where(f"source_id = '{SOURCE}'").count()
    assert ledger == 3
    # Both pulls reached silver: one row per (person, insurance type) that bronze holds.
    keys = ["person_id", "insurance_type"]
    bronze_keys = tables.read(spark, lake, "bronze.social_insurance").select(*keys).distinct()
    silver_keys = tables.read(spark, lake, "silver.social_insurance").select(*keys)
    assert silver_keys.count() == bronze_keys.count()
    assert silver_keys.exceptAll(bronze_keys).count() == 0


def test_a_pull_interrupted_after_bronze_is_completed_not_pulled_twice(
    postgres_settings, spark, tmp_path, monkeypatch
):
    """The department's table grows before the rerun: the first range still lands once."""
    from jobs.ingest import QUARANTINE

    url, lake = _department(postgres_settings, monkeypatch, tmp_path, "dept_hr_resume", 600, 17)
    first_total = _count(url)

    monkeypatch.setenv("DATONG_INGEST_FAULT", "after_bronze")
    with pytest.raises(RuntimeError, match="injected fault"):
        run_source(SOURCE, settings=lake, spark=spark, register=False, validate=False)
    monkeypatch.delenv("DATONG_INGEST_FAULT")
    landed = tables.read(spark, lake, "bronze.social_insurance").count()
    assert 0 < landed <= first_total  # the crash came after the bronze write
    generate(Options(persons=600, seed=17, out=tmp_path / "landing", db_url=url, batch=2))
    total = _count(url)
    assert total > first_total

    [resumed] = run_source(SOURCE, settings=lake, spark=spark, register=False, validate=False)
    assert resumed.status == "succeeded", resumed.error
    assert resumed.rows_read == first_total
    [rest] = run_source(SOURCE, settings=lake, spark=spark, register=False, validate=False)
    assert rest.status == "succeeded" and rest.rows_read == total - first_total
    assert rest.file != resumed.file

    # Every row of the department's table once: in bronze or in quarantine.
    bronze = tables.read(spark, lake, "bronze.social_insurance").count()
    quarantined = tables.read(spark, lake, QUARANTINE).where(f"_source_id = '{SOURCE}'").count()
    assert bronze == landed + rest.accepted == resumed.accepted + rest.accepted
    assert quarantined == resumed.quarantined + rest.quarantined
    assert bronze + quarantined == total
    ledger = tables.read(spark, lake, LEDGER).where(f"source_id = '{SOURCE}'").collect()
    assert sorted(r["file"] for r in ledger) == sorted([resumed.file, rest.file])


def test_each_full_pull_lands_the_whole_table_as_its_own_batch(
    postgres_settings, spark, tmp_path, monkeypatch
):
    """A full snapshot has no watermark range: each pull is keyed by its run, not skipped."""
    from datong.contracts import load_resources
    from datong.sources import load_sources
    from jobs.ingest import finish_pull, pull_jdbc, write_ledger

    url, lake = _department(postgres_settings, monkeypatch, tmp_path, "dept_hr_full", 300, 19)
    total = _count(url)
    source = load_sources()[SOURCE].model_copy(update={"mode": "full"})
    resource = load_resources()[source.resource]

    pulls = []
    for _ in range(2):
        pulls.append(pull_jdbc(spark, lake, source, resource))
        write_ledger(spark, lake, pulls[-1:])
        finish_pull(lake, source.id)  # as run_source does
    first, second = pulls
    assert first.status == second.status == "succeeded"
    assert first.rows_read == second.rows_read == total
    assert first.checksum != second.checksum and first.batch_id != second.batch_id
    assert first.watermark_mark is None
    bronze = tables.read(spark, lake, "bronze.social_insurance")
    per_batch = {r["_batch_id"]: r["count"] for r in bronze.groupBy("_batch_id").count().collect()}
    assert per_batch == {first.batch_id: first.accepted, second.batch_id: second.accepted}
    assert first.accepted == second.accepted > 0

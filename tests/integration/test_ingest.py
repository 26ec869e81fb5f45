"""Ingest on generated deliveries, scored against the generator's ground truth."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from datong import tables
from datong.settings import Settings
from jobs.ingest import LEDGER, QUARANTINE, run_source
from synthetic.errors import ErrorRates
from synthetic.generate import Options, generate

pytestmark = pytest.mark.integration

# One source per delivery format: CSV GB18030, CSV UTF-8, JSON Lines, XLSX.
SOURCES = [
    "public_security.household_register",
    "market_regulation.enterprise_registration",
    "health.birth_certificate",
    "institution_staffing.public_institution",
]
RULE_FOR_KIND = {"column_count": "INGEST-001"}


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("landing")
    rates = ErrorRates.load(scale=3.0)
    generate(Options(persons=1200, seed=5, out=out, rates=rates, households_per_chunk=500))
    truth = [
        json.loads(line)
        for line in (out / "_truth" / "batch-0001" / "errors.jsonl").read_text().splitlines()
    ]
    return out, truth


@pytest.fixture(scope="module")
def lake(tmp_path_factory, spark) -> Settings:
    return Settings(state_dir=tmp_path_factory.mktemp("ingest-state"), spark_master="local[2]")


def _source_of(file: str) -> str:
    department, table = file.split("/")[:2]
    return f"{department}.{table}"


@pytest.fixture(scope="module")
def ingested(landing, lake, spark):
    out, truth = landing
    failed = {_source_of(e["file"]) for e in truth if e["expected"] == "failed_batch"}
    sources = sorted(set(SOURCES) | failed)
    results = {s: run_source(s, out, lake, spark, validate=False) for s in sources}
    return sources, results


def test_counts_reconcile_and_unreadable_files_fail_alone(landing, ingested):
    out, truth = landing
    sources, results = ingested
    failed_files = {e["file"]: e["kind"] for e in truth if e["expected"] == "failed_batch"}
    assert len(failed_files) == 2
    for source in sources:
        for result in results[source]:
            if result.file in failed_files:
                assert result.status == "failed"
                expected = (
                    "encoding" if failed_files[result.file] == "wrong_encoding" else "truncated"
                )
                assert expected in result.error and result.file in result.error
            else:
                assert result.status == "succeeded", result.error
                assert result.rows_read == result.accepted + result.quarantined > 0


def test_every_injected_row_error_is_quarantined_with_its_rule(landing, lake, spark, ingested):
    out, truth = landing
    sources, _ = ingested
    files = {r.file for rs in ingested[1].values() for r in rs if r.status == "succeeded"}
    quarantine = tables.read(spark, lake, QUARANTINE).collect()
    got = {
        (row["_source_file"], row["_row_number"]): {p["rule_id"] for p in row["problems"]}
        for row in quarantine
    }
    from datong.contracts import load_resources

    resources = load_resources()
    expected = {}
    for error in truth:
        if error["expected"] != "quarantine" or error["file"] not in files:
            continue
        if error["kind"] == "invalid_check_character":
            element = next(
                e for e in resources[error["resource"]].elements if e.name == error["field"]
            )
            rule = "INGEST-007" if element.standard == "GB 11643" else "INGEST-008"
        else:
            rule = RULE_FOR_KIND[error["kind"]]
        expected[(error["file"], error["record"])] = rule
    assert expected, "the generated data should contain rows to quarantine"
    # Exactly the injected rows are quarantined (no clean row), each with its rule.
    assert set(got) == set(expected)
    for key, rule in expected.items():
        assert rule in got[key], key


def test_normalisable_errors_are_accepted_with_the_true_value(landing, lake, spark, ingested):
    out, truth = landing
    from pyspark.sql import functions as F

    files = {r.file for rs in ingested[1].values() for r in rs if r.status == "succeeded"}
    wanted = [e for e in truth if e["expected"] == "normalise" and e["file"] in files]
    checked = 0
    for resource in {e["resource"] for e in wanted}:
        errors = [e for e in wanted if e["resource"] == resource]
        keys = [f"{e['file']}#{e['record']}" for e in errors]
        frame = tables.read(spark, lake, resource)
        key = F.concat_ws("#", F.col("_source_file"), F.col("_row_number").cast("string"))
        rows = {
            f"{r['_source_file']}#{r['_row_number']}": r
            for r in frame.where(key.isin(keys)).collect()
        }
        for error in errors:
            value = rows[f"{error['file']}#{error['record']}"][error["field"]]
            assert str(value) == error["true_value"] or (
                hasattr(value, "isoformat") and value.isoformat()[:10] == error["true_value"][:10]
            ), error
            checked += 1
    assert checked >= 10


def test_rerun_is_a_no_op(landing, lake, spark, ingested):
    out, _ = landing
    before = tables.read(spark, lake, "bronze.household_register").count()
    again = run_source("public_security.household_register", out, lake, spark, validate=False)
    assert {r.status for r in again} == {"skipped"}
    assert tables.read(spark, lake, "bronze.household_register").count() == before
    ledger = tables.read(spark, lake, LEDGER).where("status = 'succeeded'")
    assert ledger.count() == ledger.select("checksum").distinct().count()


def test_crash_between_writes_converges_on_rerun(landing, lake, spark, ingested, monkeypatch):
    out, _ = landing
    source = "health.birth_certificate"
    folder = out / "health" / "birth_certificate" / "batch-0009"
    folder.mkdir()
    original = next((out / "health" / "birth_certificate" / "batch-0001").glob("*.jsonl"))
    lines = original.read_text(encoding="utf-8").splitlines()[:5]
    (folder / "birth_certificate.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setenv("DATONG_INGEST_FAULT", "after_bronze")
    with pytest.raises(RuntimeError, match="injected fault"):
        run_source(source, out, lake, spark, validate=False)
    monkeypatch.delenv("DATONG_INGEST_FAULT")
    results = run_source(source, out, lake, spark, validate=False)
    [result] = [r for r in results if r.batch_id == "batch-0009"]
    assert result.status == "succeeded" and result.rows_read == 5
    # The crashed run's bronze write is not repeated: each of the five rows landed once.
    bronze = tables.read(spark, lake, "bronze.birth_certificate").where("_batch_id = 'batch-0009'")
    quarantined = tables.read(spark, lake, QUARANTINE).where("_batch_id = 'batch-0009'")
    assert bronze.count() == result.accepted
    assert bronze.count() + quarantined.count() == 5
    assert bronze.select("_row_number").distinct().count() == bronze.count()
    assert os.environ.get("DATONG_INGEST_FAULT") is None


def test_a_file_delivered_twice_in_one_run_lands_once(landing, lake, spark, ingested):
    """The same content in two new batches: the second is skipped, not claimed as landed."""
    out, _ = landing
    source = "health.birth_certificate"
    original = next((out / "health" / "birth_certificate" / "batch-0001").glob("*.jsonl"))
    lines = original.read_text(encoding="utf-8").splitlines()[5:8]
    for batch in ("batch-0010", "batch-0011"):
        folder = out / "health" / "birth_certificate" / batch
        folder.mkdir()
        (folder / "birth_certificate.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    results = {r.batch_id: r for r in run_source(source, out, lake, spark, validate=False)}
    assert results["batch-0010"].status == "succeeded" and results["batch-0010"].rows_read == 3
    assert results["batch-0011"].status == "skipped"
    bronze = tables.read(spark, lake, "bronze.birth_certificate")
    landed = bronze.where("_batch_id IN ('batch-0010', 'batch-0011')")
    assert landed.count() == results["batch-0010"].accepted
    assert {r["_batch_id"] for r in landed.select("_batch_id").distinct().collect()} <= {
        "batch-0010"
    }


def test_a_failed_file_sent_again_intact_lands(landing, lake, spark, ingested):
    """The department's corrected redelivery of a file that failed whole, under its name."""
    import shutil

    from synthetic.generate import redelivery_dir

    out, truth = landing
    manifest = json.loads((out / "_truth" / "batch-0001" / "manifest.json").read_text())
    records = {f["path"]: f["records"] for f in manifest["files"]}
    failed = sorted({e["file"] for e in truth if e["expected"] == "failed_batch"})
    for file in failed:
        shutil.copyfile(redelivery_dir(out, 1) / file, out / file)
        [result] = [r for r in run_source(_source_of(file), out, lake, spark, validate=False)
                    if r.file == file]  # fmt: skip
        assert result.status == "succeeded", result.error
        assert result.rows_read == records[file] == result.accepted + result.quarantined


def test_a_changed_or_foreign_file_is_refused_and_recorded(landing, lake, spark, ingested):
    """A delivery is not rewritten in place; a file of another format is named, not ignored."""
    out, _ = landing
    source = "health.birth_certificate"
    original = next((out / "health" / "birth_certificate" / "batch-0001").glob("*.jsonl"))
    lines = original.read_text(encoding="utf-8").splitlines()[10:13]
    folder = out / "health" / "birth_certificate" / "batch-0012"
    folder.mkdir()
    delivered = folder / "birth_certificate.jsonl"
    delivered.write_text("\n".join(lines[:2]) + "\n", encoding="utf-8")
    [first] = [r for r in run_source(source, out, lake, spark, validate=False)
               if r.batch_id == "batch-0012"]  # fmt: skip
    assert first.status == "succeeded" and first.rows_read == 2
    delivered.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "notes.txt").write_text("说明\n", encoding="utf-8")
    (folder / "more.jsonl.part").write_text(lines[2] + "\n", encoding="utf-8")
    results = {Path(r.file).name: r for r in run_source(source, out, lake, spark, validate=False)
               if r.batch_id == "batch-0012"}  # fmt: skip
    assert set(results) == {"birth_certificate.jsonl", "notes.txt"}
    changed, foreign = results["birth_certificate.jsonl"], results["notes.txt"]
    assert changed.status == "failed" and "changed after it was ingested" in changed.error
    assert foreign.status == "failed" and "not a .jsonl file" in foreign.error
    bronze = tables.read(spark, lake, "bronze.birth_certificate").where("_batch_id = 'batch-0012'")
    assert bronze.count() == first.accepted
    ledger = tables.read(spark, lake, LEDGER).where("batch_id = 'batch-0012'")
    assert sorted(r["status"] for r in ledger.collect()) == ["failed", "failed", "succeeded"]

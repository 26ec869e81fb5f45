"""`datong demo`, the platform's main job, end to end on a small province.

Run in this process on the shared Spark session, with its own state dir and services. The
expected values come from the generator's ground truth and rates, not from the demo.
"""

from __future__ import annotations

import csv
import io
import os

import pytest

from datong import query
from datong.services.process import free_port
from tests.conftest import make_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_demo_runs_every_step_and_takes_the_redelivered_files(
    spark, tmp_path, s3_test_settings, monkeypatch
):
    from rich.console import Console

    from datong import demo
    from datong.services import platform

    settings = make_settings(tmp_path, "file", s3_test_settings, postgres_port=free_port())
    monkeypatch.setattr(demo, "DEMO_PERSONS", 1500)
    monkeypatch.setattr("datong.spark.spark_session", lambda settings, name: spark)
    # The demo names 人社's database in the environment, as the source declaration asks.
    monkeypatch.delenv("DATONG_SOURCE_HUMAN_RESOURCES_URL", raising=False)
    try:
        summary = demo.run_demo(settings, Console(file=io.StringIO(), width=200))
        steps = {step: outcome for step, outcome, _ in summary.steps}
        # The generator breaks one file by truncation and one by encoding (its default rates).
        assert steps["corrected files redelivered (数据纠错)"].startswith("2 of 2 files ingested")
        ledger = query.run(
            settings,
            "SELECT file, array_agg(status ORDER BY started_at) FROM lake.ops.ingest_ledger "
            "GROUP BY file HAVING count(*) > 1",
        ).rows
        assert sorted(statuses for _, statuses in ledger) == [["failed", "succeeded"]] * 2
        # After the redelivery the legal-person library holds the registered legal persons.
        truth = tmp_path / "landing" / "_truth" / "batch-0001" / "legal_person.csv"
        with truth.open(encoding="utf-8") as handle:
            registered = sum(1 for _ in csv.DictReader(handle))
        [(entities,)] = query.run(settings, "SELECT count(*) FROM lake.legal_person.entity").rows
        assert 0.95 * registered <= entities <= registered
        refused = steps["queries as a granted and an ungranted user"]
        assert "education_analyst: refused by Trino" in refused
    finally:
        platform.down(settings)
        os.environ.pop("DATONG_SOURCE_HUMAN_RESOURCES_URL", None)

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
        # A month later: the build took batch 2, and persons who moved have a new version.
        later = steps["a month later: batch 2, built incrementally"]
        assert "the build rebuilt only the subjects they touch (population" in later, later
        truths = [_truth_rows(tmp_path, batch, "person.csv") for batch in (1, 2)]
        moved = {p for p, row in truths[0].items()
                 if p in truths[1] and row["address_id"] != truths[1][p]["address_id"]}  # fmt: skip
        assert moved, "nobody moved in batch 2: the check would prove nothing"
        closed = {pid for (pid,) in query.run(
            settings,
            "SELECT DISTINCT person_id FROM lake.population.person_history "
            "WHERE valid_to IS NOT NULL",
        ).rows}  # fmt: skip
        # A person whose household row was quarantined in one batch may miss a version.
        assert len(moved & closed) >= 0.95 * len(moved), (len(moved & closed), len(moved))
        # After batch 2 the legal-person library holds the registered legal persons.
        registered = len(_truth_rows(tmp_path, 2, "legal_person.csv"))
        [(entities,)] = query.run(settings, "SELECT count(*) FROM lake.legal_person.entity").rows
        assert 0.95 * registered <= entities <= registered
        refused = steps["queries as a granted and an ungranted user"]
        assert "education_analyst: refused by Trino" in refused
    finally:
        platform.down(settings)
        os.environ.pop("DATONG_SOURCE_HUMAN_RESOURCES_URL", None)


def _truth_rows(state: object, batch: int, name: str) -> dict[str, dict[str, str]]:
    """The generator's true golden records at a batch, by their key (the first column)."""
    path = state / "landing" / "_truth" / f"batch-{batch:04d}" / name  # type: ignore[operator]
    with path.open(encoding="utf-8") as handle:
        return {next(iter(row.values())): row for row in csv.DictReader(handle)}

"""A generated ingest DAG run with `dag.test()` on SQLite: a batch lands and Trino reads it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from datong import query
from datong.settings import REPO_ROOT
from synthetic.generate import Options, generate

from .test_cli import cli_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RUN_DAG = """
import sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
run = bag.get_dag("ingest_institution_staffing").test()
print("STATE", run.state)
print("TASKS", sorted((ti.task_id, str(ti.state)) for ti in run.get_task_instances()))
"""


def test_ingest_dag_runs_end_to_end(platform_settings, tmp_path):
    if platform_settings.uses_s3:
        pytest.skip("one storage root is enough for the Airflow path")
    landing = tmp_path / "landing"
    manifest = generate(Options(persons=3000, seed=4, out=landing))
    delivered = next(f for f in manifest.files if f.resource == "bronze.public_institution")
    airflow_home = tmp_path / "airflow"
    airflow_home.mkdir()
    env = cli_env(
        platform_settings,
        AIRFLOW_HOME=str(airflow_home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO_ROOT / "dags"),
        AIRFLOW_CONN_DATONG_LANDING=json.dumps(
            {"conn_type": "fs", "extra": {"path": str(landing)}}
        ),
        PYTHONPATH=str(REPO_ROOT),
    )
    airflow = Path(sys.executable).with_name("airflow")
    migrate = subprocess.run(
        [str(airflow), "db", "migrate"], env=env, capture_output=True, text=True, timeout=300
    )
    assert migrate.returncode == 0, migrate.stderr[-2000:]

    def run_dag() -> str:
        run = subprocess.run(
            [sys.executable, "-c", RUN_DAG, str(REPO_ROOT / "dags")],
            env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert "STATE" in run.stdout, (run.stdout + run.stderr)[-3000:]
        return run.stdout

    out = run_dag()
    assert "STATE success" in out, out[-3000:]
    [(count,)] = query.run(
        platform_settings, "SELECT count(*) FROM lake.bronze.public_institution"
    ).rows
    [(accepted, status)] = query.run(
        platform_settings,
        "SELECT accepted, status FROM lake.ops.ingest_ledger "
        "WHERE source_id = 'institution_staffing.public_institution'",
    ).rows
    assert status == "succeeded" and count == accepted > 0
    assert accepted <= delivered.records
    assert os.environ.get("AIRFLOW_HOME") != str(airflow_home)
    # A second batch: three of the institutions again, and a file of another format. The
    # rows land (the Asset is updated); the check task fails, naming the foreign file.
    from openpyxl import Workbook, load_workbook

    first = landing / delivered.path
    rows = list(load_workbook(first, read_only=True).active.iter_rows(values_only=True))[:4]
    second = first.parent.parent / "batch-0002"
    second.mkdir()
    book = Workbook()
    for row in rows:
        book.active.append(list(row))
    book.save(second / first.name)
    (second / "readme.txt").write_text("说明\n", encoding="utf-8")
    out = run_dag()
    assert "STATE failed" in out, out[-3000:]
    assert "('public_institution.ingest', 'success')" in out, out[-3000:]
    assert "('public_institution.deliveries_complete', 'failed')" in out, out[-3000:]
    ledger = query.run(
        platform_settings,
        "SELECT file, status, rows_read, accepted, error FROM lake.ops.ingest_ledger "
        "WHERE batch_id = 'batch-0002' ORDER BY file",
    ).rows
    assert [(Path(f).name, status, read) for f, status, read, _, _ in ledger] == [
        (first.name, "succeeded", 3), ("readme.txt", "failed", 0)
    ]  # fmt: skip
    assert "not a .xlsx file" in ledger[1][4]
    [(landed,)] = query.run(
        platform_settings,
        "SELECT count(*) FROM lake.bronze.public_institution WHERE _batch_id = 'batch-0002'",
    ).rows
    assert landed == ledger[0][3]
    # Nothing new once the foreign file is gone: the group is skipped, the run succeeds.
    (second / "readme.txt").unlink()
    out = run_dag()
    assert "STATE success" in out, out[-3000:]
    assert "('public_institution.ingest', 'skipped')" in out, out[-3000:]

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
    run = subprocess.run(
        [sys.executable, "-c", RUN_DAG, str(REPO_ROOT / "dags")],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert "STATE success" in run.stdout, (run.stdout + run.stderr)[-3000:]
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

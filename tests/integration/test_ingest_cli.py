"""`datong ingest` end to end: files → bronze → queryable through Trino, on both roots."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from datong import query
from synthetic.generate import Options, generate
from tests.trino_support import UNGRANTED_PASSWORD

from .test_cli import cli_env

pytestmark = pytest.mark.integration


def test_ingest_command_lands_rows_queryable_in_trino(platform_settings, tmp_path):
    manifest = generate(Options(persons=300, seed=21, out=tmp_path))
    delivered = next(f for f in manifest.files if f.resource == "bronze.credit_red_list")
    env = cli_env(platform_settings, COLUMNS="250")
    command = [sys.executable, "-m", "datong.cli", "ingest", "--landing", str(tmp_path),
               "--source", "credit.credit_red_list"]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "1 files ingested" in result.stdout
    rows = query.run(
        platform_settings,
        "SELECT count(*), count(DISTINCT _row_number) FROM lake.bronze.credit_red_list",
    ).rows
    ledger = query.run(
        platform_settings,
        "SELECT rows_read, accepted, quarantined, status FROM lake.ops.ingest_ledger "
        "WHERE source_id = 'credit.credit_red_list'",
    ).rows
    [(read, accepted, quarantined, status)] = ledger
    assert status == "succeeded" and read == delivered.records
    assert rows == [(accepted, accepted)] and accepted + quarantined == read
    # Analysts without a grant see nothing (they log in, then Trino denies the catalog).
    with pytest.raises(query.QueryError, match="Access Denied: Cannot access catalog lake"):
        query.run(
            platform_settings,
            "SELECT * FROM lake.bronze.credit_red_list",
            user="analyst",
            password=UNGRANTED_PASSWORD,
        )
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "1 already done" in again.stdout
    assert os.environ.get("DATONG_INGEST_FAULT") is None

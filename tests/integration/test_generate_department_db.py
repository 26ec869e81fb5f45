"""`datong generate --db`: a department's own PostgreSQL table, read back over SQL."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import psycopg
import pytest
from stdnum.cn import ric

from datong.services.postgres import ensure_database

pytestmark = pytest.mark.integration


def test_db_table_resource_lands_in_the_department_database(postgres_settings, tmp_path):
    url = ensure_database(postgres_settings, "dept_human_resources")
    for batch in (1, 2):
        result = subprocess.run(
            [sys.executable, "-m", "datong.cli", "generate", "--persons", "800", "--seed", "3",
             "--out", str(tmp_path), "--db", url, "--batch", str(batch)],
            capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "250"},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "postgres:human_resources.social_insurance" in result.stdout.replace("\n", "")
    import json

    manifests = [
        json.loads((tmp_path / "_truth" / f"batch-000{b}" / "manifest.json").read_text())
        for b in (1, 2)
    ]
    delivered = [
        next(f for f in m["files"] if f["resource"] == "bronze.social_insurance")["records"]
        for m in manifests
    ]
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as connection:
        rows = connection.execute(
            "SELECT person_id, start_date, update_time FROM human_resources.social_insurance"
        ).fetchall()
        columns = [
            r[0]
            for r in connection.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = 'human_resources' AND table_name = 'social_insurance' "
                "ORDER BY ordinal_position"
            ).fetchall()
        ]
    # Incremental delivery: batch 2 appended its changes to the same table.
    assert len(rows) == sum(delivered) and delivered[0] > 0
    assert columns[0] == "person_id" and "update_time" in columns
    assert all(isinstance(start, dt.date) for _, start, _ in rows)
    valid = sum(ric.is_valid(person_id.strip()) for person_id, _, _ in rows)
    assert valid >= 0.95 * len(rows)
    latest_first = max(u for _, _, u in rows[: delivered[0]])
    assert all(u > latest_first for _, _, u in rows[delivered[0] :])

"""JDBC pull of a department's table into the staged format (jobs.jdbc).

The pull tests need PostgreSQL and Spark and are marked ``integration`` one by one; the
URL conversion tests are plain unit tests, so they carry no marker.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from pyspark.sql import functions as F
from sqlalchemy.engine import URL

from datong.contracts import load_resources
from datong.services.postgres import ensure_database
from datong.sources import load_sources
from jobs import rules
from jobs.jdbc import (
    JdbcConnection,
    JdbcSourceError,
    connection_for,
    jdbc_connection,
    mark_query,
    read_increment,
    rows_query,
    sql_literal,
)

SOURCE = "human_resources.social_insurance"
TABLE = "human_resources.social_insurance"


# --- URL conversion: pure, no engines ----------------------------------------------------


def test_sqlalchemy_url_becomes_jdbc_url_user_and_password():
    password = "s3cr:t/p@ss%word?#"
    url = URL.create(
        "postgresql+psycopg",
        username="dept_hr",
        password=password,
        host="127.0.0.1",
        port=5433,
        database="dept_human_resources",
    ).render_as_string(hide_password=False)
    connection = jdbc_connection(url)
    assert connection.url == "jdbc:postgresql://127.0.0.1:5433/dept_human_resources"
    assert connection.user == "dept_hr"
    assert connection.password == password
    assert password not in connection.url and "p@ss" not in connection.url
    assert password not in repr(connection)


def test_jdbc_url_defaults_and_parameters():
    plain = jdbc_connection("postgresql://u:pw@127.0.0.1/db?sslmode=disable")
    assert plain.url == "jdbc:postgresql://127.0.0.1:5432/db?sslmode=disable"
    assert (plain.user, plain.password) == ("u", "pw")
    assert "pw" not in plain.url


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mysql://u:hidden-pw@127.0.0.1/db", "only PostgreSQL"),
        ("postgresql+psycopg://u:hidden-pw@127.0.0.1:5433", "database"),
        ("postgresql+psycopg://127.0.0.1:5433/db", "user"),
        ("not a url hidden-pw", "not a database URL"),
    ],
)
def test_bad_urls_are_refused_without_quoting_the_password(url, problem):
    with pytest.raises(ValueError, match=problem) as caught:
        jdbc_connection(url)
    assert "hidden-pw" not in str(caught.value)


def test_marks_are_quoted_as_literals():
    assert sql_literal("2024-01-02 03:04:05") == "'2024-01-02 03:04:05'"
    assert sql_literal("x' OR '1'='1") == "'x'' OR ''1''=''1'"
    query = rows_query(TABLE, ["a", "t"], {"t"}, "t", "2024-01-01", "2024-02-01")
    assert query == (
        'SELECT "a"::text AS "a", "t", "t" AS "_watermark" '
        'FROM "human_resources"."social_insurance" '
        "WHERE \"t\" > '2024-01-01' AND \"t\" <= '2024-02-01'"
    )
    assert rows_query(TABLE, ["a"], set(), "a", "x", None).endswith("WHERE FALSE")
    assert mark_query(TABLE, "t", None) == (
        'SELECT max("t")::text AS "mark" FROM "human_resources"."social_insurance"'
    )


def test_unset_url_variable_is_named(monkeypatch):
    source = load_sources()[SOURCE]
    monkeypatch.delenv(source.delivery.url_env, raising=False)
    with pytest.raises(JdbcSourceError, match=f"{source.delivery.url_env} is not set"):
        connection_for(source)
    monkeypatch.setenv(source.delivery.url_env, "mysql://u:hidden-pw@127.0.0.1/db")
    with pytest.raises(JdbcSourceError, match=source.delivery.url_env) as caught:
        connection_for(source)
    assert "hidden-pw" not in str(caught.value)


def test_connection_repr_hides_the_password():
    assert "pw" not in repr(JdbcConnection("jdbc:postgresql://h:1/d", "u", "pw"))


# --- the pull: PostgreSQL + Spark --------------------------------------------------------


def _generate(url: str, out: Path, batch: int) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "datong.cli", "generate", "--persons", "300", "--seed", "11",
         "--out", str(out), "--db", url, "--batch", str(batch)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "250"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def _in_postgres(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as connection:
        return connection.execute(sql).fetchall()


def _check_staged(staged, resource) -> list:
    columns = [e.name for e in resource.elements]
    types = dict(staged.dtypes)
    assert list(staged.columns) == ["_row_number", "_raw", "_field_count", *columns]
    assert (types["_row_number"], types["_raw"], types["_field_count"]) == (
        "bigint",
        "string",
        "int",
    )
    assert all(types[c] == "string" for c in columns)
    rows = staged.collect()
    assert sorted(r["_row_number"] for r in rows) == list(range(1, len(rows) + 1))
    assert {r["_field_count"] for r in rows} <= {len(columns)}
    for row in rows[:50]:
        assert json.loads(row["_raw"]) == {c: row[c] for c in columns}
    return rows


@pytest.mark.integration
def test_incremental_pull_takes_exactly_the_new_rows(
    postgres_settings, spark, tmp_path, monkeypatch, caplog
):
    source = load_sources()[SOURCE]
    resource = load_resources()[source.resource]
    url = ensure_database(postgres_settings, "dept_hr_jdbc")
    password = jdbc_connection(url).password
    monkeypatch.setenv(source.delivery.url_env, url)
    caplog.set_level(logging.DEBUG, logger="jobs.jdbc")

    _generate(url, tmp_path, 1)
    [(first_count, first_max)] = _in_postgres(
        url, f"SELECT count(*), max(update_time) FROM {TABLE}"
    )
    assert first_count > 0
    staged, mark = read_increment(spark, source, resource, since=None)
    rows = _check_staged(staged, resource)
    assert len(rows) == first_count
    assert mark is not None and dt.datetime.fromisoformat(mark) == first_max

    # The staged values are PostgreSQL's, in the formats the bronze rules parse.
    expected = _in_postgres(
        url,
        "SELECT person_id, insurance_type, to_char(start_date, 'YYYY-MM-DD'), "
        f"to_char(end_date, 'YYYY-MM-DD'), to_char(update_time, 'YYYY-MM-DD HH24:MI:SS') "
        f"FROM {TABLE}",
    )
    pulled = [
        (r["person_id"], r["insurance_type"], r["start_date"], r["end_date"], r["update_time"])
        for r in rows
    ]
    assert sorted(pulled, key=str) == sorted(expected, key=str)
    # The bronze rules on the dates and times alone (all of them cost half a minute).
    temporal = [e for e in resource.elements if e.type in ("date", "timestamp")]
    checked = rules.transform(
        staged.select("_row_number", "_raw", F.lit(len(temporal)).alias("_field_count"),
                      *(e.name for e in temporal)),
        resource.model_copy(update={"elements": temporal}),
    )  # fmt: skip
    assert checked.where(F.size("_rules") > 0).count() == 0
    assert checked.where(F.col("update_time").isNull()).count() == 0

    _generate(url, tmp_path, 2)
    [(total,)] = _in_postgres(url, f"SELECT count(*) FROM {TABLE}")
    added = total - first_count
    assert added > 0
    staged, second_mark = read_increment(spark, source, resource, since=mark)
    rows = _check_staged(staged, resource)
    assert len(rows) == added
    assert second_mark is not None
    assert dt.datetime.fromisoformat(second_mark) > dt.datetime.fromisoformat(mark)
    assert all(r["update_time"] >= mark[:19] for r in rows)

    staged, third_mark = read_increment(spark, source, resource, since=second_mark)
    assert staged.count() == 0 and third_mark == second_mark

    # A full pull takes every row and keeps no mark.
    full = source.model_copy(update={"mode": "full", "watermark": None})
    staged, no_mark = read_increment(spark, full, resource, since=second_mark)
    assert staged.count() == total and no_mark is None

    assert caplog.records and not any(password in r.getMessage() for r in caplog.records)

    monkeypatch.delenv(source.delivery.url_env)
    with pytest.raises(JdbcSourceError, match=source.delivery.url_env):
        read_increment(spark, source, resource, since=second_mark)

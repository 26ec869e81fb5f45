"""Talking to Trino: queries as a named user, and registering Spark-written Delta tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import trino
from trino.exceptions import TrinoQueryError

from datong.settings import LAKE_SCHEMAS, Settings
from datong.storage import trino_location


class QueryError(RuntimeError):
    """Trino refused or failed a query; the message is Trino's own."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


def connect(settings: Settings, user: str | None = None) -> trino.dbapi.Connection:
    return trino.dbapi.connect(
        host=settings.trino_host,
        port=settings.trino_port,
        user=user or settings.trino_admin_user,
        catalog="lake",
        http_scheme="http",
        source="datong",
    )


def run(settings: Settings, sql: str, user: str | None = None) -> QueryResult:
    """Run one statement and fetch every row."""
    connection = connect(settings, user)
    try:
        cursor = connection.cursor()
        cursor.execute(sql)
        rows = [tuple(row) for row in cursor.fetchall()]
        columns = [column[0] for column in cursor.description or []]
    except TrinoQueryError as error:
        raise QueryError(f"{error.error_name}: {error.message}") from None
    finally:
        connection.close()
    return QueryResult(columns, rows)


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def ensure_schemas(settings: Settings, schemas: tuple[str, ...] = LAKE_SCHEMAS) -> None:
    """Create the lake's schemas in Trino (idempotent); each lives under the storage root."""
    existing = {row[0] for row in run(settings, "SHOW SCHEMAS FROM lake").rows}
    for schema in schemas:
        if schema not in existing:
            location = trino_location(settings, f"{schema}.x").rsplit("/", 1)[0]
            run(
                settings,
                f'CREATE SCHEMA IF NOT EXISTS lake."{schema}" '
                f"WITH (location = {_literal(location)})",
            )


def table_exists(settings: Settings, name: str) -> bool:
    schema, table = name.split(".")
    result = run(
        settings,
        "SELECT count(*) FROM lake.information_schema.tables "
        f"WHERE table_schema = {_literal(schema)} AND table_name = {_literal(table)}",
    )
    return bool(result.rows[0][0])


def flush_metadata_cache(settings: Settings) -> None:
    """Make Trino forget cached Delta transaction logs and metastore entries.

    Needed after a table was removed and written anew at the same location (a full
    rebuild): the new log starts again at version 0, and a cached snapshot of the old,
    longer log would point Trino at data files that no longer exist.
    """
    run(settings, "CALL lake.system.flush_metadata_cache()")


def register_table(settings: Settings, name: str) -> bool:
    """Make the Delta table ``<schema>.<table>`` that Spark wrote queryable as ``lake.<name>``.

    Returns False when it was registered already (Trino then reads new commits by itself).
    """
    schema, table = name.split(".")
    if table_exists(settings, name):
        return False
    run(
        settings,
        "CALL lake.system.register_table("
        f"schema_name => {_literal(schema)}, table_name => {_literal(table)}, "
        f"table_location => {_literal(trino_location(settings, name))})",
    )
    return True

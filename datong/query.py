"""Talking to Trino: queries as a named user, and registering Spark-written Delta tables.

Trino speaks HTTPS only and authenticates every user with a password (file authenticator,
bcrypt hashes). The client pins the certificate in ``settings.trino_certificate_path``; the
admin's password comes from the state dir's secrets, anyone else's from the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
import trino
from trino.auth import BasicAuthentication
from trino.exceptions import HttpError, TrinoQueryError

from datong.settings import LAKE_SCHEMAS, Settings
from datong.storage import trino_location


class QueryError(RuntimeError):
    """Trino refused or failed a query; the message is Trino's own."""


class AuthenticationError(QueryError):
    """Trino did not accept the user's password (HTTP 401)."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    # Trino's id of the query: the key of its audit event.
    query_id: str | None = None


def connect(
    settings: Settings, user: str | None = None, password: str | None = None
) -> trino.dbapi.Connection:
    """A connection as ``user`` (default: the admin, with the state dir's admin password)."""
    if user is None or user == settings.trino_admin_user:
        user = settings.trino_admin_user
        if password is None:
            from datong.secrets import trino_admin_password

            password = trino_admin_password(settings.state_dir)
    if password is None:
        raise ValueError(f"no password given for Trino user {user!r}")
    session = requests.Session()
    session.verify = str(settings.trino_certificate_path)
    # requests lets REQUESTS_CA_BUNDLE (set on many machines) override session.verify; the
    # pinned certificate must win, and proxies from the environment never apply to Trino.
    session.trust_env = False
    return trino.dbapi.connect(
        host=settings.trino_host,
        port=settings.trino_port,
        user=user,
        auth=BasicAuthentication(user, password),
        catalog="lake",
        http_scheme="https",
        http_session=session,
        source="datong",
    )


def run(
    settings: Settings, sql: str, user: str | None = None, password: str | None = None
) -> QueryResult:
    """Run one statement and fetch every row."""
    connection = connect(settings, user, password)
    try:
        cursor = connection.cursor()
        cursor.execute(sql)
        rows = [tuple(row) for row in cursor.fetchall()]
        columns = [column[0] for column in cursor.description or []]
        query_id = cursor.query_id
    except TrinoQueryError as error:
        raise QueryError(f"{error.error_name}: {error.message}") from None
    except HttpError as error:
        if str(error).startswith("error 401"):
            raise AuthenticationError(f"Trino refused the password of {user!r}: {error}") from None
        raise
    finally:
        connection.close()
    return QueryResult(columns, rows, query_id)


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

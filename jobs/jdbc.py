"""Pulling a table from a department's own database over JDBC, in the staged format.

A JDBC source names an environment variable that holds the database's SQLAlchemy-style URL
(``postgresql+psycopg://user:password@host:port/database``); it becomes a JDBC URL plus a
user and a password for Spark's JDBC data source (the password never goes into the URL,
a message or a log line). ``read_increment`` returns what ``jobs.staging.stage`` makes of
a delivered file: ``_row_number``, ``_raw``, ``_field_count`` and one string column per
data element, so the same bronze rules apply to files and tables alike.

An incremental source takes the rows whose watermark passed the last mark, compared in
PostgreSQL on the column's own type. The new mark is looked up first and the rows are
then pulled between the two marks, so the returned (lazy) DataFrame means the same rows
however often it is evaluated. Rows whose watermark is NULL are never pulled by an
incremental source, and neither are rows committed later with a watermark below the mark:
the watermark column must only grow. Evaluate the result once (stage it, or persist it):
a row updated meanwhile moves past the mark and out of this pull into the next one.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from datong.sources import JdbcDelivery, Source
from jobs.staging import FIELD_COUNT, RAW, ROW_NUMBER

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import DataType

log = logging.getLogger(__name__)

DRIVER = "org.postgresql.Driver"
DEFAULT_PORT = 5432
# Rows per round trip: the driver streams the result instead of holding all of it.
FETCH_SIZE = 10_000
# The watermark in its own type, next to its text form: only for ordering, never staged.
WATERMARK = "_watermark"
# Contract types that are pulled in their own type and formatted as the bronze rules parse
# them; every other type is rendered as text by PostgreSQL itself (exact numerics).
TEMPORAL = ("date", "timestamp")
TIMESTAMP_FORMAT = "yyyy-MM-dd HH:mm:ss"


class JdbcSourceError(RuntimeError):
    """A JDBC source cannot be read as declared; the message says why (never a password)."""


@dataclass(frozen=True)
class JdbcConnection:
    """Where and as whom Spark connects; ``url`` carries no password."""

    url: str
    user: str
    password: str = field(repr=False)


def jdbc_connection(database_url: str) -> JdbcConnection:
    """Convert a SQLAlchemy-style PostgreSQL URL into a JDBC URL, user and password.

    Percent-escapes in the user and password are decoded; query parameters (``sslmode``,
    ...) are kept on the JDBC URL. Errors never quote the URL, which holds the password.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(database_url)
    except (ArgumentError, ValueError):
        raise ValueError(
            "not a database URL (expected postgresql+psycopg://user:password@host:port/db)"
        ) from None
    if url.get_backend_name() != "postgresql":
        raise ValueError(f"only PostgreSQL databases are supported, not {url.drivername!r}")
    user, host, database = url.username, url.host, url.database
    if not user or not host or not database:
        parts = {"user": user, "host": host, "database": database}
        raise ValueError(
            f"the database URL lacks its {', '.join(k for k, v in parts.items() if not v)}"
        )
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    jdbc = f"jdbc:postgresql://{host}:{url.port or DEFAULT_PORT}/{quote(database, safe='')}"
    parameters = [
        (key, item)
        for key, value in sorted(url.query.items())
        if key.lower() not in ("user", "password")
        for item in ((value,) if isinstance(value, str) else value)
    ]
    if parameters:
        jdbc += "?" + urlencode(parameters)
    return JdbcConnection(jdbc, user, url.password or "")


def connection_for(source: Source) -> JdbcConnection:
    """The connection of a JDBC source, from the environment variable it names."""
    delivery = source.delivery
    if not isinstance(delivery, JdbcDelivery):
        raise JdbcSourceError(f"{source.id} is delivered as files, not over JDBC")
    value = os.environ.get(delivery.url_env, "").strip()
    if not value:
        raise JdbcSourceError(
            f"{source.id}: the environment variable {delivery.url_env} is not set; it must "
            "hold the department database's URL "
            "(postgresql+psycopg://user:password@host:port/database)"
        )
    try:
        return jdbc_connection(value)
    except ValueError as error:
        raise JdbcSourceError(f"{source.id}: {delivery.url_env}: {error}") from None


def quote_identifier(name: str) -> str:
    """A PostgreSQL identifier, quoted (``schema.table`` is two identifiers)."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


def sql_literal(value: str) -> str:
    """A PostgreSQL string literal of unknown type: compared with a column, it is read as
    that column's type, so a mark compares as a timestamp, a date or a number."""
    if "\x00" in value:
        raise ValueError("a watermark cannot contain a NUL character")
    return "'" + value.replace("'", "''") + "'"


def rows_query(
    table: str,
    columns: list[str],
    temporal: set[str],
    watermark: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> str:
    """The pull: every contract column (temporal ones in their own type, the others as
    PostgreSQL's text), plus the watermark when given, with ``since < watermark <= until``;
    a watermark without ``until`` means there is nothing new (no row)."""
    items = [
        quote_identifier(c)
        if c in temporal
        else f"{quote_identifier(c)}::text AS {quote_identifier(c)}"
        for c in columns
    ]
    conditions = []
    if watermark is not None:
        items.append(f"{quote_identifier(watermark)} AS {quote_identifier(WATERMARK)}")
        if until is None:
            conditions.append("FALSE")
        else:
            if since is not None:
                conditions.append(f"{quote_identifier(watermark)} > {sql_literal(since)}")
            conditions.append(f"{quote_identifier(watermark)} <= {sql_literal(until)}")
    query = f"SELECT {', '.join(items)} FROM {quote_identifier(table)}"
    return query + (f" WHERE {' AND '.join(conditions)}" if conditions else "")


def mark_query(table: str, watermark: str, since: str | None) -> str:
    """The newest watermark past ``since``, as PostgreSQL writes it (full precision)."""
    column = quote_identifier(watermark)
    query = f'SELECT max({column})::text AS "mark" FROM {quote_identifier(table)}'
    return query + (f" WHERE {column} > {sql_literal(since)}" if since is not None else "")


def _read(spark: SparkSession, connection: JdbcConnection, query: str) -> DataFrame:
    return (
        spark.read.format("jdbc")
        .option("url", connection.url)
        .option("driver", DRIVER)
        .option("user", connection.user)
        .option("password", connection.password)  # Spark redacts it in plans and the UI
        .option("query", query)
        .option("fetchsize", str(FETCH_SIZE))
        # timestamp (without time zone) as Spark's TIMESTAMP_NTZ: the wall-clock value
        # the department stored, not shifted by the JVM's or the session's time zone.
        .option("preferTimestampNTZ", "true")
        .load()
    )


def _as_text(column: Column, kind: DataType) -> Column:
    """A pulled value as the staged string: dates yyyy-MM-dd, times yyyy-MM-dd HH:mm:ss."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, TimestampNTZType, TimestampType

    if isinstance(kind, StringType):
        return column
    if isinstance(kind, TimestampNTZType):
        # The cast keeps the wall clock (no time zone); drop the fraction of a second.
        return F.substring(column.cast("string"), 1, len("yyyy-MM-dd HH:mm:ss"))
    if isinstance(kind, TimestampType):  # timestamptz: in the session's time zone
        return F.date_format(column, TIMESTAMP_FORMAT)
    # Dates cast to yyyy-MM-dd; the other types arrive as PostgreSQL's own text already.
    return column.cast("string")


def read_increment(
    spark: SparkSession, source: Source, resource: Any, since: str | None
) -> tuple[DataFrame, str | None]:
    """Pull a JDBC source's new rows in the staged format, with the new high-water mark.

    Incremental (and append) sources with a watermark take the rows whose watermark is
    past ``since`` (everything when ``since`` is None) and return the newest watermark
    pulled, as text, or ``since`` when there is nothing new. Full sources take every row
    and return None as the mark.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    delivery = source.delivery
    if not isinstance(delivery, JdbcDelivery):
        raise JdbcSourceError(f"{source.id} is delivered as files, not over JDBC")
    connection = connection_for(source)
    columns = [e.name for e in resource.elements]
    temporal = {e.name for e in resource.elements if e.type in TEMPORAL}
    incremental = source.mode != "full"
    watermark = source.watermark if incremental else None
    if incremental and watermark is None:
        raise JdbcSourceError(
            f"{source.id}: mode {source.mode} needs a watermark column to tell new rows"
        )
    mark: str | None = None
    if watermark is not None:
        found = _read(spark, connection, mark_query(delivery.table, watermark, since)).first()
        newest = found["mark"] if found is not None else None
        mark = newest if newest is not None else since
        log.info(
            "%s: pulling %s from %s as %s, %s < %s <= %s",
            source.id, delivery.table, connection.url, connection.user, since, watermark, newest,
        )  # fmt: skip
        query = rows_query(delivery.table, columns, temporal, watermark, since, newest)
    else:
        log.info(
            "%s: pulling all of %s from %s as %s",
            source.id, delivery.table, connection.url, connection.user,
        )  # fmt: skip
        query = rows_query(delivery.table, columns, temporal)
    pulled = _read(spark, connection, query)
    kinds = {f.name: f.dataType for f in pulled.schema.fields}
    missing = [c for c in columns if c not in kinds]
    if missing:
        raise JdbcSourceError(f"{source.id}: {delivery.table} has no column(s) {missing}")
    values = {c: _as_text(F.col(c), kinds[c]) for c in columns}
    keys = list(resource.primary_key) + [c for c in columns if c not in resource.primary_key]
    # A stable order within the pull: watermark, primary key, then every other column.
    # (No partition: the numbering is global, so Spark sorts in one task.)
    order = ([F.col(WATERMARK)] if watermark is not None else []) + [values[c] for c in keys]
    fields = [values[c].alias(c) for c in columns]
    staged = pulled.select(
        F.row_number().over(Window.orderBy(*order)).cast("long").alias(ROW_NUMBER),
        F.to_json(F.struct(*fields), {"ignoreNullFields": "false"}).alias(RAW),
        F.lit(len(columns)).cast("int").alias(FIELD_COUNT),
        *fields,
    )
    return staged, mark

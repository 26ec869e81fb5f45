"""The audit trail: every catalogue action, and every query Trino reports having run.

Trino's HTTP event listener POSTs each ``QueryCompletedEvent`` as JSON; :func:`parse_query_event`
keeps what an auditor asks: who (``context.user``), from where (``context.source``), what
(``metadata.query``), which tables and columns it read (``ioMetadata.inputs``), how many rows
it returned (``statistics.outputRows``), when (``createTime`` … ``endTime``) and whether it
failed (``failureInfo``).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.models import AuditEvent, QueryEvent, QueryInput


def record(
    session: Session, actor: str, action: str, target: str, at: dt.datetime, **detail: Any
) -> None:
    """Add one audit row in the caller's transaction: it stands or falls with the action."""
    session.add(AuditEvent(at=at, actor=actor, action=action, target=target, detail=detail))


@dataclass(frozen=True)
class TableRead:
    catalog: str
    table: str  # <schema>.<table>
    columns: tuple[str, ...]


@dataclass(frozen=True)
class ParsedQuery:
    query_id: str
    user: str
    source: str | None
    sql: str
    state: str  # FINISHED | FAILED
    error_name: str | None
    error_message: str | None
    output_rows: int | None
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    reads: tuple[TableRead, ...] = field(default=())
    groups: tuple[str, ...] = field(default=())


class EventError(ValueError):
    """The posted JSON is not a query-completed event."""


def _time(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, int | float):  # epoch milliseconds, as some serialisers write
        return dt.datetime.fromtimestamp(value / 1000, dt.UTC)
    try:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise EventError(f"time {value!r} is not ISO 8601") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


#: "Access Denied: Cannot select from table lake.bronze.people" (Trino 476's wording).
DENIED_TABLE = re.compile(r"Access Denied: Cannot \w+ from table (\w+)\.(\w+)\.(\w+)")


def _columns(listed: Any) -> tuple[str, ...]:
    # ioMetadata.inputs name a column `name` (with its type); metadata.tables say `column`.
    names = []
    for column in listed or []:
        if isinstance(column, dict):
            names.append(str(column.get("name") or column.get("column")))
        else:
            names.append(str(column))
    return tuple(names)


def _reads(io: Any, metadata: dict[str, Any]) -> list[TableRead]:
    """The tables and columns read: the physical inputs, else the tables the query named
    (a query denied access has no inputs, but its statement still names what it wanted)."""
    inputs = io.get("inputs") if isinstance(io, dict) else None
    reads = [
        TableRead(
            str(item.get("catalogName", "")),
            f"{item.get('schema')}.{item.get('table')}",
            _columns(item.get("columns")),
        )
        for item in inputs or []
        if isinstance(item, dict)
    ]
    if reads:
        return reads
    return [
        TableRead(
            str(item.get("catalog", "")),
            f"{item.get('schema')}.{item.get('table')}",
            _columns(item.get("columns")),
        )
        for item in metadata.get("tables") or []
        if isinstance(item, dict)
    ]


def _denied_table(message: str | None) -> list[TableRead]:
    """The table a denied query wanted, from Trino's message: its event lists no tables
    (analysis stopped at the check), yet the table's provider must see the attempt."""
    found = DENIED_TABLE.search(message or "")
    return [TableRead(found[1], f"{found[2]}.{found[3]}", ())] if found else []


def parse_query_event(payload: Any) -> ParsedQuery:
    """The audit facts of one Trino ``QueryCompletedEvent`` (as the HTTP listener posts it)."""
    if not isinstance(payload, dict):
        raise EventError("a query event is a JSON object")
    metadata, context = payload.get("metadata"), payload.get("context")
    if not isinstance(metadata, dict) or not isinstance(context, dict):
        raise EventError("a query event has 'metadata' and 'context' objects")
    if not metadata.get("queryId") or not context.get("user"):
        raise EventError("a query event names metadata.queryId and context.user")
    failure = payload.get("failureInfo") or None
    error_name = error_message = None
    if isinstance(failure, dict):
        code = failure.get("errorCode") or {}
        error_name = str(code.get("name") or failure.get("failureType") or "FAILED")
        error_message = failure.get("failureMessage")
    statistics = payload.get("statistics") or {}
    reads = _reads(payload.get("ioMetadata") or {}, metadata) or _denied_table(error_message)
    rows = statistics.get("outputRows") if isinstance(statistics, dict) else None
    return ParsedQuery(
        query_id=str(metadata["queryId"]),
        user=str(context["user"]),
        source=context.get("source"),
        sql=str(metadata.get("query", "")),
        state="FAILED" if failure else str(metadata.get("queryState") or "FINISHED"),
        error_name=error_name,
        error_message=error_message,
        output_rows=int(rows) if isinstance(rows, int | float) else None,
        started_at=_time(payload.get("createTime")),
        ended_at=_time(payload.get("endTime")),
        reads=tuple(reads),
        groups=tuple(str(g) for g in context.get("groups") or []),
    )


def store_query_event(session: Session, parsed: ParsedQuery) -> bool:
    """Keep one query; a resent event (same query id) is ignored. True when stored."""
    if session.scalar(select(QueryEvent.id).where(QueryEvent.query_id == parsed.query_id)):
        return False
    event = QueryEvent(
        query_id=parsed.query_id,
        user=parsed.user,
        source=parsed.source,
        sql=parsed.sql,
        state=parsed.state,
        error_name=parsed.error_name,
        error_message=parsed.error_message,
        output_rows=parsed.output_rows,
        started_at=parsed.started_at,
        ended_at=parsed.ended_at,
        inputs=[
            QueryInput(catalog_name=r.catalog, table_name=r.table, columns=list(r.columns))
            for r in parsed.reads
        ],
    )
    session.add(event)
    return True


def usage(session: Session, tables: dict[str, str], limit: int = 500) -> list[dict[str, Any]]:
    """Who read these tables (table → resource name) through Trino, and how, newest first."""
    from catalog.models import User

    if not tables:
        return []
    query = (
        select(QueryEvent, QueryInput)
        .join(QueryInput, QueryInput.query_event_id == QueryEvent.id)
        .where(QueryInput.table_name.in_(list(tables)))
        .order_by(QueryEvent.ended_at.desc(), QueryEvent.id.desc())
        .limit(limit)
    )
    departments = {
        u.name: (u.department.code if u.department else None) for u in session.scalars(select(User))
    }
    return [
        {
            "query_id": event.query_id,
            "user": event.user,
            "department": departments.get(event.user),
            "resource": tables[read.table_name],
            "table": read.table_name,
            "columns": read.columns,
            "output_rows": event.output_rows,
            "state": event.state,
            "source": event.source,
            "ended_at": event.ended_at.isoformat() if event.ended_at else None,
            "sql": event.sql,
        }
        for event, read in session.execute(query)
    ]


def events(
    session: Session, actor_department: int | None, limit: int = 200
) -> list[dict[str, Any]]:
    """The newest catalogue actions (all of them for the platform admin)."""
    rows = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit))
    return [
        {
            "at": e.at.isoformat(),
            "actor": e.actor,
            "action": e.action,
            "target": e.target,
            "detail": e.detail,
        }
        for e in rows
    ]

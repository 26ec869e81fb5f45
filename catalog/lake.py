"""What the lake says about each resource, read through Trino only: does its linked table
exist (挂接), when did data last arrive (freshness), and its latest quality score.

The quality tables are written by the quality jobs and may not exist yet: a missing table
(or a Trino that does not answer) leaves the value unknown (None), never an error.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session
from trino.exceptions import Error as TrinoError

from catalog.models import Resource
from datong.query import QueryError, run
from datong.settings import Settings

log = logging.getLogger(__name__)
#: What a missing table or an unreachable Trino raises: the value stays unknown.
LAKE_ERRORS = (QueryError, OSError, TrinoError)


@dataclass
class LakeStatus:
    tables: set[str] | None = None  # None: Trino did not answer
    freshness: dict[str, dt.datetime] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)


def _aware(value: object) -> dt.datetime | None:
    if not isinstance(value, dt.datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _optional(settings: Settings, sql: str, what: str, status: LakeStatus) -> list[tuple]:
    try:
        return run(settings, sql).rows
    except LAKE_ERRORS as error:
        log.info("%s unknown: %s", what, error)
        status.unknown.append(what)
        return []


def read_status(settings: Settings) -> LakeStatus:
    """One pass over information_schema, the ingest and build ledgers and the quality score."""
    status = LakeStatus()
    try:
        rows = run(
            settings,
            "SELECT table_schema || '.' || table_name FROM "
            "lake.information_schema.tables WHERE table_schema <> 'information_schema'",
        ).rows
    except LAKE_ERRORS as error:
        log.warning("Trino did not answer (%s): the lake status stays unknown", error)
        status.unknown.append("tables")
        return status
    status.tables = {str(row[0]) for row in rows}
    if "ops.ingest_ledger" in status.tables:
        for resource, moment in _optional(
            settings,
            "SELECT resource, max(finished_at) FROM "
            "lake.ops.ingest_ledger WHERE status = 'succeeded' "
            "GROUP BY resource",
            "freshness",
            status,
        ):
            if _aware(moment):
                status.freshness[str(resource)] = _aware(moment)  # type: ignore[assignment]
    if "ops.build_ledger" in status.tables:
        for (moment,) in _optional(
            settings, "SELECT max(built_at) FROM lake.ops.build_ledger", "build freshness", status
        ):
            if _aware(moment):
                status.freshness["*build*"] = _aware(moment)  # type: ignore[assignment]
    if "quality.score" in status.tables:
        sql = "SELECT resource, max_by(score, scored_at) FROM lake.quality.score GROUP BY resource"
        for resource, score in _optional(settings, sql, "quality score", status):
            if score is not None:
                status.scores[str(resource)] = float(score)
    else:
        status.unknown.append("quality score")
    return status


def closed_gates(settings: Settings) -> dict[str, str]:
    """Tables whose latest quality gate is closed (a ``fail`` expectation failed): reasons.

    Their grants are not published (发布闸门). No gate table yet means no gate is closed.
    """
    sql = (
        "SELECT resource, reasons FROM (SELECT resource, passed, reasons, row_number() OVER "
        "(PARTITION BY resource ORDER BY checked_at DESC, run_id DESC) AS n "
        "FROM lake.quality.gate) WHERE n = 1 AND NOT passed"
    )
    try:
        rows = run(settings, sql).rows
    except QueryError as error:
        if "does not exist" in str(error):
            return {}
        raise  # a gate that cannot be read holds the publication back until it can
    except (OSError, TrinoError) as error:
        # No Trino to ask is no Trino to enforce grants either: publish what the rules say.
        log.warning("quality gates unknown, Trino did not answer: %s", error)
        return {}
    return {str(resource): str(reasons or "") for resource, reasons in rows}


def apply_status(session: Session, status: LakeStatus, now: dt.datetime) -> int:
    """Write what the lake said onto every resource; returns how many are linked."""
    linked = 0
    for resource in session.scalars(select(Resource)):
        if status.tables is None:
            continue
        resource.linked = bool(resource.linked_table) and resource.linked_table in status.tables
        linked += bool(resource.linked)
        key = resource.name if resource.kind != "base" else "*build*"
        resource.freshness = status.freshness.get(key, resource.freshness)
        resource.quality_score = status.scores.get(resource.name)
        resource.lake_checked_at = now
    return linked

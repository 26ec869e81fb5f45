"""Publication gates (发布闸门): a gold table whose ``fail`` expectation failed is not published.

``lake.quality.gate`` holds one row per gold table per run; the catalogue refuses to grant or
open a table whose latest row has ``passed = false``, and shows ``reasons``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datong.settings import Settings
    from quality.validate import CheckResult

GATE_TABLE = "quality.gate"


@dataclass(frozen=True)
class Gate:
    """Whether a gold table may be published, and why not."""

    resource: str
    passed: bool
    reasons: str
    run_id: str
    checked_at: dt.datetime | None = None


def reason(result: CheckResult) -> str:
    """One failed expectation as a sentence: rule, column, how many rows, what it means."""
    from quality.rules import load_rules

    rule = load_rules()[result.check.rule]
    return (f"{result.check.rule} on {result.check.column}: {result.unexpected_count} of "
            f"{result.element_count} rows ({rule.en} / {rule.zh})")  # fmt: skip


def gate_of(resource: str, results: list[CheckResult], run_id: str,
            checked_at: dt.datetime | None = None) -> Gate:  # fmt: skip
    """Closed when any ``fail`` check failed; ``warn`` checks never close it."""
    failed = [r for r in results if r.check.severity == "fail" and not r.success]
    reasons = "; ".join(reason(r) for r in failed)
    return Gate(resource, not failed, reasons, run_id, checked_at)


def latest_gates(settings: Settings) -> dict[str, Gate]:
    """The latest gate of every gold table, read through Trino (``lake.quality.gate``)."""
    from datong.query import run

    sql = (
        "SELECT resource, passed, reasons, run_id, checked_at FROM ("
        " SELECT *, row_number() OVER (PARTITION BY resource ORDER BY checked_at DESC, run_id"
        " DESC) AS n FROM lake.quality.gate) WHERE n = 1"
    )
    rows: list[Any] = run(settings, sql).rows
    return {row[0]: Gate(row[0], bool(row[1]), row[2] or "", row[3], row[4]) for row in rows}

"""The quality score of a resource (质量评分): completeness, validity, consistency, timeliness.

Pure arithmetic over counts, so the formula is stated once and tested on its own:

- completeness = 100 × (1 − min(1, missing / delivered)), where ``missing`` is the rows
  ingest quarantined for a missing value or a wrong field count (INGEST-001/002) plus the
  values the completeness checks found missing;
- validity = 100 × (1 − min(1, invalid / delivered)), where ``invalid`` is the rows ingest
  quarantined for any other rule plus the values the validity checks found invalid;
- consistency = 100 × (1 − min(1, inconsistent / checked)), where ``inconsistent`` is the
  values the consistency checks (business rules, key uniqueness) found and ``checked`` the
  rows validated;
- timeliness = 100 while the latest delivery is at most one update cycle old, then falling
  linearly to 0 at two cycles: 100 × clamp(2 − age / cycle, 0, 1);
- score = 0.30 completeness + 0.30 validity + 0.25 consistency + 0.15 timeliness.

``delivered`` is the rows read from the batch's files (ingest ledger), ``checked`` the rows
that reached bronze. Every part is in 0..100.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datong.settings import Settings

WEIGHTS = {"completeness": 0.30, "validity": 0.30, "consistency": 0.25, "timeliness": 0.15}
#: Days in each declared update cycle (contracts' ``update_cycle``).
CYCLE_DAYS = {"realtime": 1.0, "daily": 1.0, "weekly": 7.0, "monthly": 31.0,
              "quarterly": 92.0, "yearly": 366.0}  # fmt: skip


@dataclass(frozen=True)
class Counts:
    """What a run found for one resource's batch."""

    delivered: int
    checked: int
    missing: int
    invalid: int
    inconsistent: int
    age_days: float
    update_cycle: str


@dataclass(frozen=True)
class Score:
    completeness: float
    validity: float
    consistency: float
    timeliness: float
    score: float


def _share_good(bad: int, total: int) -> float:
    if total <= 0:
        return 100.0
    return 100.0 * (1.0 - min(1.0, bad / total))


def timeliness(age_days: float, update_cycle: str) -> float:
    cycle = CYCLE_DAYS[update_cycle]
    return 100.0 * max(0.0, min(1.0, 2.0 - age_days / cycle))


def score(counts: Counts) -> Score:
    """The four parts and the weighted score, each in 0..100."""
    parts = {
        "completeness": _share_good(counts.missing, counts.delivered),
        "validity": _share_good(counts.invalid, counts.delivered),
        "consistency": _share_good(counts.inconsistent, counts.checked),
        "timeliness": timeliness(counts.age_days, counts.update_cycle),
    }
    total = sum(WEIGHTS[name] * value for name, value in parts.items())
    return Score(**parts, score=round(total, 4))


def latest_scores(settings: Settings) -> dict[str, dict[str, Any]]:
    """The latest score of every resource, read through Trino (``lake.quality.score``)."""
    from datong.query import run

    sql = (
        "SELECT resource, run_id, scored_at, completeness, validity, consistency, timeliness,"
        " score FROM (SELECT *, row_number() OVER (PARTITION BY resource"
        " ORDER BY scored_at DESC, run_id DESC) AS n FROM lake.quality.score) WHERE n = 1"
    )
    result = run(settings, sql)
    return {row[0]: dict(zip(result.columns, row, strict=True)) for row in result.rows}

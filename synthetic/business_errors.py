"""Business-rule errors: rows that pass every bronze rule but break a declared quality rule.

Each kind applies to the resources named here (columns as ``schemas/rules/quality.yaml``
checks them) and is recorded in the ground truth with ``expected: quality_quarantine``:
the quality suite must send the row to ``quarantine.quality_rejected``.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from synthetic.errors import Injected

EXPECTED = "quality_quarantine"
#: kind → resource → the columns the kind corrupts (first) and reads.
TARGETS: dict[str, dict[str, tuple[str, ...]]] = {
    "birth_date_mismatch": {"bronze.household_register": ("birth_date", "person_id")},
    "gender_mismatch": {"bronze.household_register": ("gender", "person_id")},
    "expiry_before_issue": {
        "bronze.e_license": ("expiry_date", "issue_date"),
        "bronze.administrative_license": ("valid_to", "valid_from"),
    },
    "publicity_outside_window": {
        "bronze.administrative_penalty": ("publicity_end_date", "decision_date"),
    },
    "retired_division_code": {
        "bronze.household_register": ("division_code", "update_time"),
        "bronze.birth_certificate": ("division_code", "issue_date"),
        "bronze.death_registration": ("death_division_code", "registration_date"),
        "bronze.enterprise_registration": ("division_code", "update_time"),
    },
}
KINDS = tuple(TARGETS)


def _day(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    return value if isinstance(value, dt.date) else None


def corrupt(
    kind: str, resource: str, row: dict[str, Any], rng: random.Random
) -> tuple[str, Any] | None:
    """Break ``row`` in place by ``kind``; (field, true value), or None when it cannot apply."""
    from datong.reference import load_divisions

    columns = TARGETS[kind].get(resource)
    if columns is None:
        return None
    field, other = columns
    true_value = row.get(field)
    if kind == "birth_date_mismatch" and isinstance(true_value, dt.date):
        # Earlier, never later: a later date could fall after the extract.
        row[field] = true_value - dt.timedelta(days=rng.randint(2, 3000))
    elif kind == "gender_mismatch" and true_value in ("1", "2"):
        row[field] = "2" if true_value == "1" else "1"
    elif kind == "expiry_before_issue" and _day(row.get(other)) and true_value is not None:
        row[field] = _day(row[other]) - dt.timedelta(days=rng.randint(1, 400))  # type: ignore[operator]
    elif kind == "publicity_outside_window" and _day(row.get(other)):
        decided = _day(row[other])
        late = decided + dt.timedelta(days=rng.randint(1100, 2000))  # type: ignore[operator]
        early = decided - dt.timedelta(days=rng.randint(0, 30))  # type: ignore[operator]
        row[field] = late if rng.random() < 0.5 else early
    elif kind == "retired_division_code" and _day(row.get(other)):
        day = _day(row[other])
        retired = [d.code for d in load_divisions()
                   if d.valid_to is not None and d.level == "county" and d.valid_to <= day]  # type: ignore[operator]  # fmt: skip
        if not retired:
            return None
        row[field] = rng.choice(sorted(retired))
    else:
        return None
    return field, true_value


def injected(
    file: str, resource: str, kind: str, field: str, true_value: Any, row: dict[str, Any]
) -> Injected:
    return Injected(file, 0, resource, field, kind, EXPECTED, _text(true_value), _text(row[field]))


def _text(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value

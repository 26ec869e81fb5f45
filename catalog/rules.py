"""Pure rules of the exchange: review deadlines in working days, masks for sensitive columns,
and the SQL row filter of a division-code row scope."""

from __future__ import annotations

import datetime as dt
import re

#: A review is due within 10 working days (Monday to Friday) of the request.
REVIEW_WORKING_DAYS = 10
DIVISION_PREFIX = re.compile(r"^[0-9]{2,12}$")
ID_MASK = "concat(substr({c}, 1, 6), '********', substr({c}, -4))"
NAME_MASK = "concat(substr({c}, 1, 1), '*')"


def add_working_days(start: dt.datetime, days: int) -> dt.datetime:
    """``start`` moved forward by ``days`` working days (Saturdays and Sundays skipped)."""
    moment = start
    left = days
    while left > 0:
        moment += dt.timedelta(days=1)
        if moment.weekday() < 5:
            left -= 1
    return moment


def mask_kind(name: str, grade: str, personal: bool, standard: str | None) -> str | None:
    """Which mask a granted column gets: ``id`` (6 + ******** + 4), ``name`` (first char + *).

    Identifiers of persons (graded general-4: ID numbers, and numbers that carry one) are
    partly hidden; names of persons (general-3 and above) keep their first character.
    Names the law publishes (general-2: legal representatives) are shown as they are.
    """
    if not personal:
        return None
    if grade in ("general-4", "important", "core") and (
        standard == "GB 11643" or name.endswith(("_id", "_no"))
    ):
        return "id"
    if grade != "general-2" and grade != "general-1" and (name == "name" or name.endswith("_name")):
        return "name"
    return None


def mask_expression(column: str, kind: str) -> str:
    """The Trino SQL expression shown instead of ``column``'s value."""
    quoted = '"' + column.replace('"', '""') + '"'
    template = {"id": ID_MASK, "name": NAME_MASK}[kind]
    return template.format(c=quoted)


def row_filter(column: str, prefixes: list[str] | None) -> str | None:
    """``division_code LIKE '4201%' OR …``: rows in the granted divisions; None for all rows."""
    if prefixes is None:
        return None
    if not prefixes:
        return "false"  # an empty scope is no rows, never all of them
    for prefix in prefixes:
        if not DIVISION_PREFIX.fullmatch(prefix):
            raise ValueError(f"division prefix {prefix!r} is not 2 to 12 digits")
    quoted = '"' + column.replace('"', '""') + '"'
    return " OR ".join(f"{quoted} LIKE '{prefix}%'" for prefix in sorted(set(prefixes)))


def covered(prefix: str, scope: list[str] | None) -> bool:
    """Whether rows under ``prefix`` lie inside ``scope`` (None is every row)."""
    return scope is None or any(prefix.startswith(outer) for outer in scope)


def narrow_scope(scopes: list[list[str] | None]) -> list[str] | None:
    """The rows every approver allowed: prefixes inside all of the scopes (None = all rows)."""
    limited = [s for s in scopes if s is not None]
    if not limited:
        return None
    candidates = {p for s in limited for p in s}
    inside = sorted(p for p in candidates if all(covered(p, s) for s in limited))
    # Drop prefixes another kept prefix already covers: 4201 covers 420102.
    return [p for p in inside if not any(p != q and p.startswith(q) for q in inside)]

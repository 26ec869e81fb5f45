"""Trino's access rules, compiled from the catalogue's grants (the contract between the two).

The catalogue (``catalog/``) decides *who may read what*; this module turns that decision
into the files Trino enforces: ``rules.json`` (file-based access control: table privileges,
column masks, denied columns, row filters), ``password.db`` (bcrypt hashes) and
``group.txt`` (each department is a Trino group). Every file is rewritten atomically and
Trino rereads it within its refresh period.

How grants become rules (Trino uses the *first* matching table rule and nothing else):

* The admin user keeps every rule of ``rules.base.json``; everyone else gets nothing that a
  grant does not give.
* The grants of one group on one table merge into one rule: the union of their columns,
  their row filters OR-ed. A column that some of those grants leave out, or mask, gets a
  mask ``CASE WHEN <filter of a grant that shows it> THEN <its value> ... ELSE NULL END``,
  so each row shows a column only as a grant covering that row allows (unmasked grants
  first). Columns no grant names are denied (``allow: false``).
* A user in several groups that hold grants on the same table gets one rule of its own for
  that table, merged the same way over all those groups' grants, ahead of the group rules
  (otherwise the first group's rule would hide the others' grants).
* A grant with ``expires_at`` is left out once expired at ``now``, and until then carries
  ``current_timestamp < TIMESTAMP '...'`` in its filter, so it stops returning rows on time
  even if nobody republishes.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from warehouse import trino_files

BASE_RULES = Path(__file__).resolve().parent / "trino" / "etc" / "rules.base.json"
#: The admin user named in rules.base.json; replaced by the configured admin user.
BASE_ADMIN = "datong"
CATALOG = "lake"

# Names that end up inside Trino regexes, SQL and the group file: plain identifiers only.
IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")
PRINCIPAL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]*")
# A mask or filter is one expression: no statement separator, no comment that could hide
# the rest of the rule's SQL, and no subquery (they run as the admin, see _table_rule).
FORBIDDEN_SQL = (";", "--", "/*", "*/")
SUBQUERY = re.compile(r"\bselect\b", re.IGNORECASE)


@dataclass(frozen=True)
class Principal:
    """A Trino user: the catalogue's user name, its bcrypt password hash and departments."""

    user: str
    password_bcrypt: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableGrant:
    """One approved grant of a table to a department (a Trino group).

    ``columns`` are the granted columns; every other column of the table is denied.
    ``masks`` maps a granted column to the SQL expression Trino shows instead of its value
    (e.g. a partly masked ID number). ``row_filter`` is a SQL boolean expression over the
    table's columns (the row scope, e.g. the department's own divisions).
    """

    grant_id: str
    group: str
    table: str
    columns: tuple[str, ...]
    masks: Mapping[str, str] = field(default_factory=dict)
    row_filter: str | None = None
    expires_at: datetime | None = None


def compile_rules(
    grants: Iterable[TableGrant],
    *,
    admin_user: str,
    now: datetime,
    table_columns: Mapping[str, Sequence[str]],
    principals: Iterable[Principal] = (),
) -> dict[str, Any]:
    """The ``rules.json`` document for these grants; expired ones are left out.

    ``principals`` (optional) lets users in several groups get their merged per-table rules.
    """
    _check_name(admin_user, PRINCIPAL_NAME, "admin_user")
    _check_aware(now, "now")
    grants = list(grants)
    for grant in grants:
        _validate_grant(grant, table_columns)
    active = [g for g in grants if g.expires_at is None or g.expires_at > now]
    by_group: dict[tuple[str, str], list[TableGrant]] = defaultdict(list)
    for grant in sorted(active, key=lambda g: g.grant_id):
        by_group[(grant.group, grant.table)].append(grant)

    rules = _base_rules(admin_user)
    tables: list[dict[str, Any]] = []
    for user, groups in _multi_group_users(principals):
        for table in sorted({t for (g, t) in by_group if g in groups}):
            merged = [x for g in sorted(groups) for x in by_group.get((g, table), [])]
            if len({x.group for x in merged}) > 1:
                subject = {"user": _regex(user)}
                tables.append(_table_rule(subject, table, merged, table_columns, admin_user))
    for (group, table), merged in sorted(by_group.items()):
        subject = {"group": _regex(group)}
        tables.append(_table_rule(subject, table, merged, table_columns, admin_user))
    granted_groups = sorted({group for group, _ in by_group})
    granted_schemas = sorted({(group, table.split(".")[0]) for group, table in by_group})
    rules["catalogs"] += [
        {"group": _regex(group), "catalog": CATALOG, "allow": "read-only"}
        for group in granted_groups
    ]
    rules["schemas"] += [
        {"group": _regex(group), "catalog": CATALOG, "schema": _regex(schema), "owner": False}
        for group, schema in granted_schemas
    ]
    rules["tables"] += tables
    return rules


def publish(
    etc_dir: Path,
    *,
    grants: Iterable[TableGrant],
    principals: Iterable[Principal],
    admin_user: str,
    now: datetime,
    table_columns: Mapping[str, Sequence[str]],
    admin_password_bcrypt: str | None = None,
) -> None:
    """Write rules.json, password.db and group.txt into Trino's ``etc_dir`` atomically.

    The admin's hash is ``admin_password_bcrypt``, else the one already in password.db
    (written when Trino first started: datong/services/trino.py).
    """
    principals = list(principals)
    for principal in principals:
        _validate_principal(principal, admin_user)
    users = [p.user for p in principals]
    if len(users) != len(set(users)):
        duplicated = sorted({u for u in users if users.count(u) > 1})
        raise ValueError(f"principals: user(s) listed twice: {', '.join(duplicated)}")
    rules = compile_rules(
        grants,
        admin_user=admin_user,
        now=now,
        table_columns=table_columns,
        principals=principals,
    )
    admin_hash = admin_password_bcrypt or trino_files.existing_hash(etc_dir, admin_user)
    if admin_hash is None:
        raise ValueError(
            f"no password hash for the admin user {admin_user!r}: pass admin_password_bcrypt "
            f"or start Trino once so {etc_dir / 'password.db'} holds it"
        )
    hashes = {admin_user: admin_hash} | {p.user: p.password_bcrypt for p in principals}
    members: dict[str, list[str]] = defaultdict(list)
    for principal in principals:
        for group in principal.groups:
            members[group].append(principal.user)
    # Each file is replaced atomically, but Trino rereads the three independently (every
    # second): for up to one refresh period new accounts may meet the old rules.
    trino_files.write_password_db(etc_dir, hashes)
    trino_files.write_group_file(etc_dir, members)
    trino_files.write_atomically(etc_dir / "rules.json", json.dumps(rules, indent=2) + "\n")


def ensure_admin_password(etc_dir: Path, admin_user: str, password: str) -> None:
    """Make password.db hold a hash of the admin's current password (keeping other users)."""
    trino_files.ensure_password(etc_dir, admin_user, password)


# -- one table rule ---------------------------------------------------------------------------


def _table_rule(
    subject: dict[str, str],
    table: str,
    grants: list[TableGrant],
    table_columns: Mapping[str, Sequence[str]],
    admin_user: str,
) -> dict[str, Any]:
    """The rule for one subject (group or user) on one table, merged from its grants.

    Filters and masks are evaluated as the admin (``*_environment``): Trino otherwise checks
    the columns they read against the user's own rule, and a row scope on a column the user
    may not see (the division code) would deny the whole table.
    """
    as_admin = {"user": admin_user}
    schema, name = table.split(".")
    conditions = [_row_condition(grant) for grant in grants]
    rule: dict[str, Any] = subject | {
        "catalog": CATALOG,
        "schema": _regex(schema),
        "table": _regex(name),
        "privileges": ["SELECT"],
    }
    columns: list[dict[str, Any]] = []
    granted = {column for grant in grants for column in grant.columns}
    for column in table_columns[table]:
        if column not in granted:
            columns.append({"name": column, "allow": False})
            continue
        mask = _column_mask(column, grants, conditions)
        if mask is not None:
            columns.append({"name": column, "mask": mask, "mask_environment": as_admin})
    if columns:
        rule["columns"] = columns
    if all(condition is not None for condition in conditions):
        rule["filter"] = _join("OR", [c for c in conditions if c is not None])
        rule["filter_environment"] = as_admin
    return rule


def _row_condition(grant: TableGrant) -> str | None:
    """The rows one grant covers, as SQL; None for every row."""
    parts = [grant.row_filter] if grant.row_filter else []
    if grant.expires_at is not None:
        instant = grant.expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        parts.append(f"current_timestamp < TIMESTAMP '{instant} UTC'")
    return _join("AND", parts) if parts else None


def _join(operator: str, parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else f" {operator} ".join(f"({p})" for p in parts)


def _column_mask(column: str, grants: list[TableGrant], conditions: list[str | None]) -> str | None:
    """What a granted column shows, row by row; None when it is shown as it is."""
    raw = f'"{column}"'
    showing = [
        (condition, grant.masks.get(column, raw))
        for grant, condition in zip(grants, conditions, strict=True)
        if column in grant.columns
    ]
    expressions = {expression for _, expression in showing}
    if len(showing) == len(grants) and len(expressions) == 1:
        # Every grant shows the column the same way; the row filter does the rest.
        expression = expressions.pop()
        return None if expression == raw else expression
    # Least masked first: a row covered by an unmasked grant shows the value.
    showing.sort(key=lambda item: item[1] != raw)
    branches = []
    for condition, expression in showing:
        if condition is None:
            shown = _case(branches, expression)
            # A grant covering every row shows the value itself: nothing to mask.
            return None if shown == raw else shown
        branches.append(f"WHEN ({condition}) THEN {expression}")
    return _case(branches, "NULL")


def _case(branches: list[str], otherwise: str) -> str:
    if not branches:
        return otherwise
    return f"CASE {' '.join(branches)} ELSE {otherwise} END"


# -- base rules and names ------------------------------------------------------------------


def _base_rules(admin_user: str) -> dict[str, Any]:
    rules: dict[str, Any] = json.loads(BASE_RULES.read_text())
    for section in rules.values():
        for rule in section:
            if rule.get("user") == BASE_ADMIN:
                rule["user"] = _regex(admin_user)
    for section in ("catalogs", "schemas", "tables"):
        rules.setdefault(section, [])
    return rules


def _multi_group_users(principals: Iterable[Principal]) -> list[tuple[str, set[str]]]:
    return sorted((p.user, set(p.groups)) for p in principals if len(set(p.groups)) > 1)


def _regex(name: str) -> str:
    """A Trino rule pattern (Java regex, whole-string match) matching exactly ``name``."""
    return re.escape(name)


# -- validation ----------------------------------------------------------------------------


def _validate_grant(grant: TableGrant, table_columns: Mapping[str, Sequence[str]]) -> None:
    where = f"grant {grant.grant_id!r}"
    _check_name(grant.group, PRINCIPAL_NAME, f"{where}: group")
    schema, _, name = grant.table.partition(".")
    if not (IDENTIFIER.fullmatch(schema) and IDENTIFIER.fullmatch(name)):
        raise ValueError(f"{where}: table {grant.table!r} is not <schema>.<table>")
    if grant.table not in table_columns:
        raise ValueError(f"{where}: table {grant.table!r} is not a known table")
    known = set(table_columns[grant.table])
    if not grant.columns:
        raise ValueError(f"{where}: grants no column of {grant.table}")
    unknown = [c for c in (*grant.columns, *grant.masks) if c not in known]
    if unknown:
        raise ValueError(f"{where}: {grant.table} has no column(s) {', '.join(unknown)}")
    not_granted = [c for c in grant.masks if c not in grant.columns]
    if not_granted:
        raise ValueError(f"{where}: masks column(s) it does not grant: {', '.join(not_granted)}")
    for column, mask in grant.masks.items():
        _check_sql(mask, f"{where}: mask of {column}")
    if grant.row_filter is not None:
        _check_sql(grant.row_filter, f"{where}: row_filter")
    if grant.expires_at is not None:
        _check_aware(grant.expires_at, f"{where}: expires_at")


def _validate_principal(principal: Principal, admin_user: str) -> None:
    _check_name(principal.user, PRINCIPAL_NAME, "principal user")
    if principal.user == admin_user:
        raise ValueError(f"principal {admin_user!r} is the admin user, whom datong manages itself")
    for group in principal.groups:
        _check_name(group, PRINCIPAL_NAME, f"principal {principal.user!r}: group")
    trino_files.check_bcrypt(principal.password_bcrypt, f"principal {principal.user!r}")


def _check_name(value: str, pattern: re.Pattern[str], what: str) -> None:
    if not pattern.fullmatch(value):
        raise ValueError(f"{what} {value!r} must match {pattern.pattern}")


def _check_sql(expression: str, what: str) -> None:
    if not expression.strip():
        raise ValueError(f"{what} is empty")
    for token in FORBIDDEN_SQL:
        if token in expression:
            raise ValueError(f"{what} contains {token!r}: one SQL expression, no comments")
    if SUBQUERY.search(expression):
        raise ValueError(f"{what} contains SELECT: an expression over the row, no subquery")


def _check_aware(moment: datetime, what: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} {moment.isoformat()} has no time zone")

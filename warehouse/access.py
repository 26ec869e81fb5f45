"""Trino's access rules, compiled from the catalogue's grants (the contract between the two).

The catalogue (``catalog/``) decides *who may read what*; this module turns that decision
into the files Trino enforces: ``rules.json`` (file-based access control: table privileges,
column masks, denied columns, row filters), ``password.db`` (bcrypt hashes) and
``group.txt`` (each department is a Trino group). Every file is rewritten atomically and
Trino rereads it within its refresh period.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any


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
) -> dict[str, Any]:
    """The ``rules.json`` document for these grants; expired ones are left out."""
    raise NotImplementedError


def publish(
    etc_dir: Path,
    *,
    grants: Iterable[TableGrant],
    principals: Iterable[Principal],
    admin_user: str,
    now: datetime,
    table_columns: Mapping[str, Sequence[str]],
) -> None:
    """Write rules.json, password.db and group.txt into Trino's ``etc_dir`` atomically."""
    raise NotImplementedError

"""``datong catalog sync``: departments and resources from ``schemas/``, and the bootstrap admin.

Idempotent: a contract whose hash equals the one last applied is skipped, so re-running
changes nothing, and a provider's edits stay until the contract itself changes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog import audit, people
from catalog.errors import Invalid
from catalog.models import DataItem, Department, Resource, ResourceSource, User
from catalog.security import admin_secret
from datong.contracts import (
    SCHEMAS_DIR,
    BaseResource,
    CatalogEntry,
    load_base_resources,
    load_departments,
    load_resources,
)
from datong.contracts import Resource as Contract


@dataclass
class SyncResult:
    departments_created: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    admin_created: bool = False


@dataclass(frozen=True)
class _Entry:
    """A resource as the contracts describe it, in the catalogue's terms."""

    name: str
    kind: str
    title_zh: str
    provider: str
    summary: str
    format: str
    update_cycle: str
    linked_table: str
    catalog: CatalogEntry
    items: list[dict[str, Any]]
    sources: tuple[str, ...]

    def digest(self) -> str:
        data = {k: v for k, v in self.__dict__.items() if k != "catalog"}
        data["catalog"] = self.catalog.model_dump(mode="json")
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _department_entry(contract: Contract) -> _Entry:
    if contract.catalog is None:
        raise Invalid(f"{contract.name}: the contract has no catalog entry")
    items = [
        {
            "name": e.name,
            "title_zh": e.title_zh,
            "type": e.type,
            "grade": e.grade,
            "personal": e.personal,
            "standard": e.standard,
        }
        for e in contract.elements
    ]
    return _Entry(
        name=contract.name,
        kind="department",
        title_zh=contract.title_zh,
        provider=contract.department,
        summary=contract.description,
        format=f"库表 table (delivered as {contract.delivery.format})",
        update_cycle=contract.update_cycle,
        linked_table=contract.name,
        catalog=contract.catalog,
        items=items,
        sources=(contract.department,),
    )


def _base_entry(base: BaseResource) -> _Entry:
    entry = base.entry
    items = [item.model_dump() for item in entry.items]
    return _Entry(
        name=entry.table,
        kind="base",
        title_zh=entry.title_zh,
        provider=entry.custodian,
        summary=entry.summary,
        format="库表 table",
        update_cycle=entry.update_cycle,
        linked_table=entry.table,
        catalog=entry,
        items=items,
        sources=base.providers,
    )


def resource_code(catalog: CatalogEntry, org_code: str) -> str:
    """信息资源代码: 前段码 (类项目细目) / 后段码 (provider's code + 4-digit sequence)."""
    return f"{catalog.classification.code}/{org_code}{catalog.sequence:04d}"


def sync(
    session: Session, state_dir: Path, now: dt.datetime, root: Path = SCHEMAS_DIR
) -> SyncResult:
    """Apply the contracts under ``root``; create the platform admin on first run."""
    result = SyncResult()
    departments = {d.code: d for d in session.scalars(select(Department))}
    for code, declared in load_departments(root).items():
        if code not in departments:
            row = Department(code=code, name_zh=declared.name_zh, org_code=declared.org_code)
            session.add(row)
            departments[code] = row
            result.departments_created.append(code)
        else:
            departments[code].name_zh = declared.name_zh
            departments[code].org_code = declared.org_code
    session.flush()
    entries = [_department_entry(c) for c in load_resources(root).values()]
    entries += [_base_entry(b) for b in load_base_resources(root).values()]
    codes: dict[str, str] = {}
    for entry in entries:
        code = resource_code(entry.catalog, departments[entry.provider].org_code)
        if code in codes:
            raise Invalid(f"resource code {code} of {entry.name} is {codes[code]}'s already")
        codes[code] = entry.name
        _apply(session, entry, code, departments, now, result)
    result.admin_created = _bootstrap_admin(session, state_dir, now)
    audit.record(
        session,
        "system",
        "catalog.sync",
        "catalog",
        now,
        created=result.created,
        updated=result.updated,
    )
    return result


def _apply(
    session: Session,
    entry: _Entry,
    code: str,
    departments: dict[str, Department],
    now: dt.datetime,
    result: SyncResult,
) -> None:
    digest = entry.digest()
    row = session.scalar(select(Resource).where(Resource.name == entry.name))
    if row is not None and row.contract_hash == digest:
        result.unchanged.append(entry.name)
        return
    catalog = entry.catalog
    values = dict(
        code=code,
        name=entry.name,
        kind=entry.kind,
        title_zh=entry.title_zh,
        provider=departments[entry.provider],
        summary=entry.summary,
        format=entry.format,
        category=catalog.classification.category,
        item=catalog.classification.item,
        subject=catalog.classification.subject,
        detail=catalog.classification.detail,
        share_type=catalog.share_type,
        share_condition=catalog.share_condition,
        legal_basis=catalog.legal_basis,
        share_method=list(catalog.share_method),
        open_type=catalog.open_type,
        open_condition=catalog.open_condition,
        update_cycle=entry.update_cycle,
        release_date=catalog.release_date,
        related=list(catalog.related),
        division_column=catalog.division_column,
        linked_table=entry.linked_table,
        contract_hash=digest,
        updated_at=now,
    )
    if row is None:
        row = Resource(
            **values, linked=None, freshness=None, quality_score=None, lake_checked_at=None
        )
        session.add(row)
        result.created.append(entry.name)
    else:
        for key, value in values.items():
            setattr(row, key, value)
        result.updated.append(entry.name)
    # Old items go first: the new ones reuse their (resource, name) keys.
    row.items.clear()
    row.sources.clear()
    session.flush()
    row.items = [DataItem(position=i, **item) for i, item in enumerate(entry.items)]
    row.sources = [ResourceSource(department=departments[d]) for d in entry.sources]
    session.flush()


def _bootstrap_admin(session: Session, state_dir: Path, now: dt.datetime) -> bool:
    """The first platform admin, its password and token in the state dir's secrets (0600)."""
    secret = admin_secret(state_dir)
    existing = session.scalar(select(User).where(User.name == secret["user"]))
    if existing is not None:
        return False
    admin = people.create_user(
        session,
        None,
        name=secret["user"],
        role=people.PLATFORM_ADMIN,
        department_code_=None,
        password=secret["password"],
        now=now,
    )
    people.store_token(session, admin, secret["token"], "bootstrap", now)
    return True

"""Resources in the catalogue: finding them, showing them, and their providers' edits."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog import audit, people
from catalog.errors import Conflict, Invalid, NotFound
from catalog.models import DataItem, Department, Resource, ResourceSource, User
from catalog.rules import mask_kind
from catalog.schemas import ResourceDraft, ResourceEdit
from datong.contracts import CatalogEntry

SHARE_TITLES = {
    "UNCONDITIONAL": "无条件共享",
    "CONDITIONAL": "有条件共享",
    "NOT_SHARED": "不予共享",
}
OPEN_TITLES = {"OPEN": "无条件开放", "CONDITIONAL_OPEN": "有条件开放", "NOT_OPEN": "不予开放"}


def get(session: Session, name: str) -> Resource:
    found = session.scalar(select(Resource).where(Resource.name == name))
    if found is None:
        raise NotFound(f"no resource {name!r} in the catalogue")
    return found


def find(
    session: Session,
    *,
    text: str | None = None,
    provider: str | None = None,
    share_type: str | None = None,
) -> list[Resource]:
    query = select(Resource).order_by(Resource.code)
    if provider:
        query = query.join(Department, Resource.provider_id == Department.id).where(
            Department.code == provider
        )
    if share_type:
        query = query.where(Resource.share_type == share_type)
    rows = list(session.scalars(query))
    if text:
        needle = text.lower()
        rows = [r for r in rows if needle in f"{r.name} {r.title_zh} {r.summary}".lower()]
    return rows


def providers_of(resource: Resource) -> list[Department]:
    """The departments whose approval a conditional request needs (联合授权 when several)."""
    return [s.department for s in resource.sources] or [resource.provider]


def item_view(item: DataItem) -> dict[str, Any]:
    return {
        "name": item.name,
        "title_zh": item.title_zh,
        "type": item.type,
        "grade": item.grade,
        "personal": item.personal,
        "standard": item.standard,
        "mask": mask_kind(item.name, item.grade, item.personal, item.standard),
    }


def summary_view(resource: Resource) -> dict[str, Any]:
    return {
        "code": resource.code,
        "name": resource.name,
        "kind": resource.kind,
        "title_zh": resource.title_zh,
        "provider": resource.provider.code,
        "share_type": resource.share_type,
        "open_type": resource.open_type,
        "linked_table": resource.linked_table,
        "linked": resource.linked,
    }


def view(resource: Resource) -> dict[str, Any]:
    """Everything the catalogue holds about a resource (编目信息)."""
    return summary_view(resource) | {
        "classification": {
            "category": resource.category,
            "item": resource.item,
            "subject": resource.subject,
            "detail": resource.detail,
        },
        "provider_name_zh": resource.provider.name_zh,
        "provider_org_code": resource.provider.org_code,
        "sources": [d.code for d in providers_of(resource)],
        "summary": resource.summary,
        "format": resource.format,
        "share_title_zh": SHARE_TITLES[resource.share_type],
        "share_condition": resource.share_condition,
        "legal_basis": resource.legal_basis,
        "share_method": resource.share_method,
        "open_condition": resource.open_condition,
        "update_cycle": resource.update_cycle,
        "release_date": resource.release_date.isoformat(),
        "related": resource.related,
        "division_column": resource.division_column,
        "freshness": resource.freshness.isoformat() if resource.freshness else None,
        "quality_score": resource.quality_score,
        "lake_checked_at": resource.lake_checked_at.isoformat()
        if resource.lake_checked_at
        else None,
        "items": [item_view(i) for i in resource.items],
    }


def _check_policy(name: str, values: dict[str, Any]) -> None:
    """The same share/open rules the YAML contracts obey (CatalogEntry's validator)."""
    try:
        CatalogEntry.model_validate(
            {
                "classification": {
                    "category": "3",
                    "item": "00",
                    "subject": "000",
                    "detail": "000",
                },
                "sequence": 1,
                "release_date": "2000-01-01",
                **{
                    k: values[k]
                    for k in (
                        "share_type",
                        "share_condition",
                        "legal_basis",
                        "share_method",
                        "open_type",
                        "open_condition",
                    )
                },
            }
        )
    except ValidationError as error:
        message = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in error.errors())
        raise Invalid(f"resource {name}: {message}") from None


def edit(
    session: Session, actor: User, name: str, change: ResourceEdit, now: dt.datetime
) -> Resource:
    """A provider's department admin edits its resource; the rules are checked as a whole."""
    resource = get(session, name)
    people.require_department(
        actor, {resource.provider_id}, (people.DEPARTMENT_ADMIN,), f"edit resource {name}"
    )
    changes = change.model_dump(exclude_unset=True)
    for related in changes.get("related") or []:
        if session.scalar(select(Resource.id).where(Resource.name == related)) is None:
            raise Invalid(f"resource {name}: related resource {related!r} is not catalogued")
    before = {k: getattr(resource, k) for k in changes}
    merged = {
        k: getattr(resource, k)
        for k in (
            "share_type",
            "share_condition",
            "legal_basis",
            "share_method",
            "open_type",
            "open_condition",
        )
    }
    merged |= {k: v for k, v in changes.items() if k in merged}
    _check_policy(name, merged)
    for key, value in changes.items():
        setattr(resource, key, value)
    resource.updated_at = now
    audit.record(
        session,
        actor.name,
        "resource.edit",
        f"resource:{name}",
        now,
        before={k: str(v) for k, v in before.items()},
        after={k: str(v) for k, v in changes.items()},
    )
    return resource


def create_manual(
    session: Session, actor: User, provider: Department, draft: ResourceDraft, now: dt.datetime
) -> Resource:
    """A resource catalogued by hand by its provider (to answer a demand)."""
    if session.scalar(select(Resource).where(Resource.name == draft.name)) is not None:
        raise Conflict(f"resource {draft.name} is catalogued already")
    _check_policy(draft.name, draft.model_dump())
    names = [i.name for i in draft.items]
    if len(set(names)) != len(names):
        raise Invalid(f"resource {draft.name}: an item name repeats")
    if draft.division_column and draft.division_column not in names:
        raise Invalid(f"resource {draft.name}: division_column {draft.division_column} is no item")
    sequence = 1 + len(
        list(session.scalars(select(Resource.id).where(Resource.provider_id == provider.id)))
    )
    code = f"3{int(provider.id):02d}999001/{provider.org_code}{9000 + sequence:04d}"
    resource = Resource(
        code=code,
        name=draft.name,
        kind="manual",
        title_zh=draft.title_zh,
        provider=provider,
        summary=draft.summary,
        format="库表 table",
        category="3",
        item=f"{provider.id:02d}"[-2:],
        subject="999",
        detail="001",
        share_type=draft.share_type,
        share_condition=draft.share_condition,
        legal_basis=draft.legal_basis,
        share_method=list(draft.share_method),
        open_type=draft.open_type,
        open_condition=draft.open_condition,
        update_cycle=draft.update_cycle,
        release_date=now.date(),
        related=[],
        division_column=draft.division_column,
        linked_table=draft.name,
        linked=None,
        freshness=None,
        quality_score=None,
        lake_checked_at=None,
        contract_hash=None,
        updated_at=now,
        items=[DataItem(position=i, **item.model_dump()) for i, item in enumerate(draft.items)],
        sources=[ResourceSource(department=provider)],
    )
    session.add(resource)
    session.flush()
    audit.record(
        session,
        actor.name,
        "resource.create",
        f"resource:{draft.name}",
        now,
        provider=provider.code,
    )
    return resource


def get_by_id(session: Session, resource_id: int) -> Resource:
    found = session.get(Resource, resource_id)
    if found is None:
        raise NotFound(f"no resource {resource_id}")
    return found

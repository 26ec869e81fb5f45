"""Demands for data nobody has catalogued (需求清单): sent to a chosen provider, who answers
by cataloguing a resource or refusing with a reason. States: OPEN → CATALOGUED | REFUSED."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog import audit, people
from catalog import resources as catalogue
from catalog.errors import Conflict, Forbidden, Invalid, NotFound
from catalog.models import Demand, Transition, User
from catalog.schemas import DemandAnswer, DemandCreate

OPEN, CATALOGUED, REFUSED = "OPEN", "CATALOGUED", "REFUSED"


def _move(
    session: Session, demand: Demand, to: str, actor: str, reason: str | None, now: dt.datetime
) -> None:
    session.add(
        Transition(
            entity="demand",
            entity_id=demand.id,
            from_state=demand.state,
            to_state=to,
            actor=actor,
            at=now,
            reason=reason,
        )
    )
    demand.state = to


def create(session: Session, actor: User, body: DemandCreate, now: dt.datetime) -> Demand:
    people.require_role(actor, people.REQUESTERS, "send a demand")
    if actor.department_id is None:
        raise Forbidden(f"user {actor.name} belongs to no department and cannot send demands")
    provider = people.department(session, body.provider)
    demand = Demand(
        department_id=actor.department_id,
        requester_id=actor.id,
        provider_id=provider.id,
        title=body.title,
        description=body.description,
        state=OPEN,
        created_at=now,
    )
    session.add(demand)
    session.flush()
    session.add(
        Transition(
            entity="demand",
            entity_id=demand.id,
            from_state=None,
            to_state=OPEN,
            actor=actor.name,
            at=now,
            reason=body.title,
        )
    )
    audit.record(
        session, actor.name, "demand.create", f"demand:{demand.id}", now, provider=provider.code
    )
    return demand


def get(session: Session, demand_id: int) -> Demand:
    found = session.get(Demand, demand_id)
    if found is None:
        raise NotFound(f"no demand {demand_id}")
    return found


def answer(
    session: Session, actor: User, demand_id: int, body: DemandAnswer, now: dt.datetime
) -> Demand:
    """The provider's department admin catalogues a resource, or it (or a reviewer) refuses."""
    demand = get(session, demand_id)
    roles = (
        (people.DEPARTMENT_ADMIN,)
        if body.decision == "catalogue"
        else (people.DEPARTMENT_ADMIN, people.REVIEWER)
    )
    people.require_department(actor, {demand.provider_id}, roles, f"answer demand {demand_id}")
    if demand.state != OPEN:
        raise Conflict(f"demand {demand_id} is {demand.state}: it was answered already")
    if body.decision == "refuse":
        if not body.reason or len(body.reason) < 2:
            raise Invalid(f"refusing demand {demand_id} needs a reason")
        demand.reason = body.reason
        _move(session, demand, REFUSED, actor.name, body.reason, now)
    else:
        if body.resource is None:
            raise Invalid(f"cataloguing for demand {demand_id} needs the resource")
        resource = catalogue.create_manual(session, actor, demand.provider, body.resource, now)
        demand.resource_id = resource.id
        _move(session, demand, CATALOGUED, actor.name, f"catalogued as {resource.name}", now)
    audit.record(session, actor.name, f"demand.{body.decision}", f"demand:{demand_id}", now)
    return demand


def visible(session: Session, actor: User) -> list[Demand]:
    rows = list(session.scalars(select(Demand).order_by(Demand.id)))
    if actor.role == people.PLATFORM_ADMIN:
        return rows
    return [d for d in rows if actor.department_id in (d.department_id, d.provider_id)]


def view(session: Session, demand: Demand) -> dict[str, Any]:
    steps = session.scalars(
        select(Transition)
        .where(Transition.entity == "demand", Transition.entity_id == demand.id)
        .order_by(Transition.id)
    )
    return {
        "id": demand.id,
        "department": demand.department.code,
        "provider": demand.provider.code,
        "title": demand.title,
        "description": demand.description,
        "state": demand.state,
        "reason": demand.reason,
        "created_at": demand.created_at.isoformat(),
        "resource": catalogue.get_by_id(session, demand.resource_id).name
        if demand.resource_id
        else None,
        "history": [
            {
                "from": t.from_state,
                "to": t.to_state,
                "actor": t.actor,
                "at": t.at.isoformat(),
                "reason": t.reason,
            }
            for t in steps
        ],
    }

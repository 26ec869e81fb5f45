"""The supply–demand exchange (供需对接): requests, reviews, grants, revocation and expiry.

A request's life is a state machine; every step is a ``transition`` row (who, when, from,
to, why) written in the same transaction as the change itself::

    (new) ─► SUBMITTED ─┬─ UNCONDITIONAL ─────────────────────────────► GRANTED
                        ├─ NOT_SHARED (refused with the legal basis) ──► REFUSED
                        └─ CONDITIONAL ─► PENDING_REVIEW ─┬─ all providers approve ─► GRANTED
                                            │   ▲         ├─ one provider refuses ──► REFUSED
                              past deadline ▼   │ partial  └─ requester withdraws ───► WITHDRAWN
                                          ESCALATED (the platform admin may decide too)
    GRANTED ─┬─ provider or admin revokes ─► REVOKED
             └─ expires_at passes ─────────► EXPIRED
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog import audit, people
from catalog import resources as catalogue
from catalog.errors import Conflict, Forbidden, Invalid, NotFound
from catalog.models import AccessRequest, Approval, Grant, Resource, Transition, User
from catalog.rules import REVIEW_WORKING_DAYS, add_working_days, covered, narrow_scope
from catalog.schemas import Approve, RequestCreate

SUBMITTED, PENDING, ESCALATED = "SUBMITTED", "PENDING_REVIEW", "ESCALATED"
GRANTED, REFUSED, WITHDRAWN, REVOKED, EXPIRED = (
    "GRANTED",
    "REFUSED",
    "WITHDRAWN",
    "REVOKED",
    "EXPIRED",
)
TRANSITIONS: dict[str | None, set[str]] = {
    None: {SUBMITTED},
    SUBMITTED: {GRANTED, REFUSED, PENDING},
    PENDING: {PENDING, GRANTED, REFUSED, ESCALATED, WITHDRAWN},
    ESCALATED: {ESCALATED, GRANTED, REFUSED, WITHDRAWN},
    GRANTED: {REVOKED, EXPIRED},
}
SYSTEM = "system"


def _move(
    session: Session,
    request: AccessRequest,
    to: str,
    actor: str,
    reason: str | None,
    now: dt.datetime,
) -> None:
    current = request.state if request.id is not None else None
    if to not in TRANSITIONS.get(current, set()):
        raise Conflict(f"request {request.id} is {current}: it cannot become {to}")
    session.add(
        Transition(
            entity="request",
            entity_id=request.id,
            from_state=current,
            to_state=to,
            actor=actor,
            at=now,
            reason=reason,
        )
    )
    request.state = to
    request.updated_at = now


def _check_fields(resource: Resource, fields: list[str]) -> None:
    known = {item.name for item in resource.items}
    unknown = [f for f in fields if f not in known]
    if unknown:
        raise Invalid(f"resource {resource.name} has no field {', '.join(unknown)}")


def create_request(
    session: Session, actor: User, body: RequestCreate, now: dt.datetime
) -> AccessRequest:
    """A department asks for a resource; the share type decides what happens at once."""
    people.require_role(actor, people.REQUESTERS, "request data")
    if actor.department_id is None:
        raise Forbidden(f"user {actor.name} belongs to no department and cannot request data")
    resource = catalogue.get(session, body.resource)
    _check_fields(resource, body.fields)
    if body.division_prefixes is not None and resource.division_column is None:
        raise Invalid(
            f"resource {resource.name} declares no division column: no row scope possible"
        )
    request = AccessRequest(
        resource=resource,
        department_id=actor.department_id,
        requester_id=actor.id,
        purpose=body.purpose,
        fields=body.fields,
        division_prefixes=body.division_prefixes,
        duration_days=body.duration_days,
        state=SUBMITTED,
        deadline=None,
        created_at=now,
        updated_at=now,
    )
    session.add(request)
    session.flush()
    session.add(
        Transition(
            entity="request",
            entity_id=request.id,
            from_state=None,
            to_state=SUBMITTED,
            actor=actor.name,
            at=now,
            reason=body.purpose,
        )
    )
    audit.record(
        session,
        actor.name,
        "request.create",
        f"request:{request.id}",
        now,
        resource=resource.name,
        fields=body.fields,
    )
    if resource.share_type == "NOT_SHARED":
        _move(
            session, request, REFUSED, SYSTEM, f"不予共享 not shared: {resource.legal_basis}", now
        )
    elif resource.share_type == "UNCONDITIONAL":
        _grant(session, request, body.fields, body.division_prefixes, body.duration_days, now)
        _move(session, request, GRANTED, SYSTEM, "无条件共享 unconditional: granted at once", now)
    else:
        request.deadline = add_working_days(now, REVIEW_WORKING_DAYS)
        for department in catalogue.providers_of(resource):
            session.add(
                Approval(request_id=request.id, department_id=department.id, state="PENDING")
            )
        providers = ", ".join(d.code for d in catalogue.providers_of(resource))
        _move(
            session,
            request,
            PENDING,
            SYSTEM,
            f"有条件共享 conditional: awaiting {providers} by {request.deadline.date()}",
            now,
        )
    session.flush()
    return request


def _grant(
    session: Session,
    request: AccessRequest,
    fields: list[str],
    prefixes: list[str] | None,
    days: int,
    now: dt.datetime,
) -> Grant:
    grant = Grant(
        request_id=request.id,
        resource_id=request.resource_id,
        department_id=request.department_id,
        fields=fields,
        division_prefixes=prefixes,
        granted_at=now,
        expires_at=now + dt.timedelta(days=days),
        revoked_at=None,
    )
    session.add(grant)
    audit.record(
        session,
        SYSTEM,
        "grant.create",
        f"request:{request.id}",
        now,
        fields=fields,
        division_prefixes=prefixes,
        expires_at=grant.expires_at.isoformat(),
    )
    return grant


def get_request(session: Session, request_id: int, lock: bool = False) -> AccessRequest:
    """The request; ``lock`` holds its row until commit, so two reviewers cannot both
    conclude it (PostgreSQL; SQLite serialises writers anyway)."""
    found = session.get(AccessRequest, request_id, with_for_update=lock)
    if found is None:
        raise NotFound(f"no request {request_id}")
    return found


def _pending_for(request: AccessRequest, actor: User) -> list[Approval]:
    """The approvals this actor may decide: its department's, or all when escalated to admin."""
    if request.state not in (PENDING, ESCALATED):
        raise Conflict(
            f"request {request.id} is {request.state}: only a request pending review "
            "can be approved or refused"
        )
    pending = [a for a in request.approvals if a.state == "PENDING"]
    if actor.role == people.PLATFORM_ADMIN:
        if request.state != ESCALATED:
            raise Forbidden(
                f"request {request.id} is not overdue: its providers' reviewers decide "
                f"until {request.deadline}"
            )
        return pending
    if actor.role != people.REVIEWER:
        raise Forbidden(f"user {actor.name} ({actor.role}) may not review: needs reviewer")
    mine = [a for a in request.approvals if a.department_id == actor.department_id]
    if not mine:
        awaited = ", ".join(a.department.code for a in pending)
        raise Forbidden(
            f"reviewer {actor.name} of {people.department_code(actor)} may not review "
            f"request {request.id}: it awaits {awaited}"
        )
    if all(a.state != "PENDING" for a in mine):
        raise Conflict(f"{people.department_code(actor)} has decided request {request.id} already")
    return [a for a in mine if a.state == "PENDING"]


def approve(
    session: Session, actor: User, request_id: int, body: Approve, now: dt.datetime
) -> AccessRequest:
    """A provider's reviewer approves, narrowing fields, rows or duration if it wants."""
    request = get_request(session, request_id, lock=True)
    approvals = _pending_for(request, actor)
    if body.fields is not None:
        wider = [f for f in body.fields if f not in request.fields]
        if wider:
            raise Invalid(f"approval may only narrow: {', '.join(wider)} was not requested")
    if body.division_prefixes is not None:
        if request.resource.division_column is None:
            raise Invalid(f"resource {request.resource.name} declares no division column")
        outside = [p for p in body.division_prefixes if not covered(p, request.division_prefixes)]
        if outside:
            raise Invalid(f"approval may only narrow: rows {', '.join(outside)} were not requested")
    if body.duration_days is not None and body.duration_days > request.duration_days:
        raise Invalid(
            f"approval may only narrow: {body.duration_days} days exceed the "
            f"{request.duration_days} requested"
        )
    for approval in approvals:
        approval.state, approval.reviewer_id, approval.decided_at = "APPROVED", actor.id, now
        approval.fields, approval.division_prefixes = body.fields, body.division_prefixes
        approval.duration_days, approval.reason = body.duration_days, body.reason
    departments = ", ".join(a.department.code for a in approvals)
    audit.record(
        session,
        actor.name,
        "request.approve",
        f"request:{request.id}",
        now,
        departments=departments,
        narrowed=body.model_dump(exclude_none=True),
    )
    left = [a for a in request.approvals if a.state == "PENDING"]
    if left:
        waiting = ", ".join(a.department.code for a in left)
        _move(
            session,
            request,
            request.state,
            actor.name,
            f"approved by {departments}; still awaiting {waiting}",
            now,
        )
        return request
    _conclude(session, request, actor, now)
    return request


def _conclude(session: Session, request: AccessRequest, actor: User, now: dt.datetime) -> None:
    """Every provider approved: grant what all of them allowed (the narrowest of each)."""
    fields = list(request.fields)
    for approval in request.approvals:
        if approval.fields is not None:
            fields = [f for f in fields if f in approval.fields]
    scope = narrow_scope(
        [request.division_prefixes, *[a.division_prefixes for a in request.approvals]]
    )
    days = min(
        [request.duration_days, *[a.duration_days for a in request.approvals if a.duration_days]]
    )
    if not fields or scope == []:
        _move(
            session,
            request,
            REFUSED,
            actor.name,
            "the providers' approvals leave no field or no row in common",
            now,
        )
        return
    _grant(session, request, fields, scope, days, now)
    _move(
        session,
        request,
        GRANTED,
        actor.name,
        f"approved by {', '.join(a.department.code for a in request.approvals)}",
        now,
    )


def refuse(
    session: Session, actor: User, request_id: int, reason: str, now: dt.datetime
) -> AccessRequest:
    """A provider's reviewer refuses; one refusal ends a joint request."""
    request = get_request(session, request_id, lock=True)
    approvals = _pending_for(request, actor)
    for approval in approvals:
        approval.state, approval.reviewer_id, approval.decided_at = "REFUSED", actor.id, now
        approval.reason = reason
    audit.record(session, actor.name, "request.refuse", f"request:{request.id}", now, reason=reason)
    _move(session, request, REFUSED, actor.name, reason, now)
    return request


def withdraw(session: Session, actor: User, request_id: int, now: dt.datetime) -> AccessRequest:
    request = get_request(session, request_id, lock=True)
    if actor.id != request.requester_id and actor.role != people.PLATFORM_ADMIN:
        people.require_department(
            actor,
            {request.department_id},
            (people.DEPARTMENT_ADMIN,),
            f"withdraw request {request.id}",
        )
    audit.record(session, actor.name, "request.withdraw", f"request:{request.id}", now)
    _move(session, request, WITHDRAWN, actor.name, "withdrawn by the requester", now)
    return request


def revoke(session: Session, actor: User, grant_id: int, reason: str, now: dt.datetime) -> Grant:
    """A provider (department admin or reviewer) or the platform admin ends a grant early."""
    grant = session.get(Grant, grant_id)
    if grant is None:
        raise NotFound(f"no grant {grant_id}")
    owners = {d.id for d in catalogue.providers_of(grant.resource)} | {grant.resource.provider_id}
    people.require_department(
        actor,
        owners,
        (people.DEPARTMENT_ADMIN, people.REVIEWER),
        f"revoke grant {grant_id} of {grant.resource.name}",
    )
    request = get_request(session, grant.request_id, lock=True)
    if grant.revoked_at is not None or request.state != GRANTED:
        raise Conflict(
            f"grant {grant_id} is not in force (request {request.id} is {request.state})"
        )
    grant.revoked_at, grant.revoked_by, grant.revoke_reason = now, actor.name, reason
    audit.record(session, actor.name, "grant.revoke", f"grant:{grant_id}", now, reason=reason)
    _move(session, request, REVOKED, actor.name, reason, now)
    return grant


def maintain(session: Session, now: dt.datetime) -> dict[str, list[int]]:
    """Escalate overdue reviews and mark passed grants expired; both as the system."""
    escalated = []
    overdue = select(AccessRequest).where(
        AccessRequest.state == PENDING, AccessRequest.deadline < now
    )
    for request in session.scalars(overdue):
        _move(
            session,
            request,
            ESCALATED,
            SYSTEM,
            f"overdue: no decision by {request.deadline}; escalated to the platform admin (数据局)",
            now,
        )
        audit.record(session, SYSTEM, "request.escalate", f"request:{request.id}", now)
        escalated.append(request.id)
    expired = []
    passed = select(Grant).where(Grant.revoked_at.is_(None), Grant.expires_at <= now)
    for grant in session.scalars(passed):
        request = get_request(session, grant.request_id)
        if request.state == GRANTED:
            _move(session, request, EXPIRED, SYSTEM, f"expired at {grant.expires_at}", now)
            audit.record(session, SYSTEM, "grant.expire", f"grant:{grant.id}", now)
            expired.append(grant.id)
    return {"escalated": escalated, "expired": expired}


def history(session: Session, entity: str, entity_id: int) -> list[Transition]:
    query = select(Transition).where(Transition.entity == entity, Transition.entity_id == entity_id)
    return list(session.scalars(query.order_by(Transition.id)))

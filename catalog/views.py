"""What the front ends show of requests and grants, and who may see which request."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog import people
from catalog.models import AccessRequest, Grant, User
from catalog.workflow import ESCALATED, PENDING, history


def may_see(actor: User, request: AccessRequest) -> bool:
    if actor.role == people.PLATFORM_ADMIN or actor.department_id == request.department_id:
        return True
    return any(a.department_id == actor.department_id for a in request.approvals)


def request_view(session: Session, request: AccessRequest) -> dict[str, Any]:
    grant = session.scalar(select(Grant).where(Grant.request_id == request.id))
    return {
        "id": request.id,
        "resource": request.resource.name,
        "department": request.department.code,
        "requester": request.requester.name,
        "purpose": request.purpose,
        "fields": request.fields,
        "division_prefixes": request.division_prefixes,
        "duration_days": request.duration_days,
        "state": request.state,
        "created_at": request.created_at.isoformat(),
        "deadline": request.deadline.isoformat() if request.deadline else None,
        "approvals": [
            {
                "department": a.department.code,
                "state": a.state,
                "reason": a.reason,
                "fields": a.fields,
                "division_prefixes": a.division_prefixes,
                "duration_days": a.duration_days,
            }
            for a in request.approvals
        ],
        "grant": grant_view(grant) if grant else None,
        "history": [
            {
                "from": t.from_state,
                "to": t.to_state,
                "actor": t.actor,
                "at": t.at.isoformat(),
                "reason": t.reason,
            }
            for t in history(session, "request", request.id)
        ],
    }


def grant_view(grant: Grant) -> dict[str, Any]:
    return {
        "id": grant.id,
        "request_id": grant.request_id,
        "resource": grant.resource.name,
        "department": grant.department.code,
        "fields": grant.fields,
        "division_prefixes": grant.division_prefixes,
        "granted_at": grant.granted_at.isoformat(),
        "expires_at": grant.expires_at.isoformat(),
        "revoked_at": grant.revoked_at.isoformat() if grant.revoked_at else None,
        "revoke_reason": grant.revoke_reason,
    }


def list_requests(
    session: Session, actor: User, box: str = "all", state: str | None = None
) -> list[AccessRequest]:
    """``mine``: my department's requests; ``inbox``: awaiting my department's review."""
    query = select(AccessRequest).order_by(AccessRequest.id)
    if state:
        query = query.where(AccessRequest.state == state)
    rows = list(session.scalars(query))
    if box == "mine":
        rows = [r for r in rows if r.department_id == actor.department_id]
    elif box == "inbox":
        rows = [
            r
            for r in rows
            if r.state in (PENDING, ESCALATED)
            and any(
                a.state == "PENDING"
                and (
                    a.department_id == actor.department_id
                    or (actor.role == people.PLATFORM_ADMIN and r.state == ESCALATED)
                )
                for a in r.approvals
            )
        ]
    return [r for r in rows if may_see(actor, r)]

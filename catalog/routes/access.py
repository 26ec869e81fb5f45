"""Routes: requests and their review, grants and revocation, demands (需求清单)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from sqlalchemy import select

from catalog import demands, people, views, workflow
from catalog.api import Ctx
from catalog.errors import Forbidden
from catalog.models import Grant
from catalog.schemas import Approve, DemandAnswer, DemandCreate, Reason, RequestCreate
from catalog.service import now_utc

router = APIRouter(tags=["exchange"])
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
State = Literal[
    "SUBMITTED",
    "PENDING_REVIEW",
    "ESCALATED",
    "GRANTED",
    "REFUSED",
    "WITHDRAWN",
    "REVOKED",
    "EXPIRED",
]


def _visible(ctx: Ctx, request_id: int) -> Any:
    request = workflow.get_request(ctx.session, request_id)
    if not views.may_see(ctx.actor, request):
        raise Forbidden(f"user {ctx.actor.name} may not see request {request_id}")
    return request


@router.post("/requests", status_code=201)
def create_request(ctx: Ctx, body: RequestCreate) -> dict[str, Any]:
    """Ask for a resource: granted at once, refused, or sent to its providers' reviewers."""
    request = workflow.create_request(ctx.session, ctx.actor, body, now_utc())
    ctx.commit(grants_changed=request.state == workflow.GRANTED)
    return views.request_view(ctx.session, request)


@router.get("/requests")
def list_requests(
    ctx: Ctx, box: Literal["all", "mine", "inbox"] = "all", state: State | None = None
) -> list[dict[str, Any]]:
    found = views.list_requests(ctx.session, ctx.actor, box, state)
    return [views.request_view(ctx.session, r) for r in found]


@router.get("/requests/{request_id}")
def show_request(ctx: Ctx, request_id: Id) -> dict[str, Any]:
    return views.request_view(ctx.session, _visible(ctx, request_id))


@router.post("/requests/{request_id}/approve")
def approve(ctx: Ctx, request_id: Id, body: Approve) -> dict[str, Any]:
    request = workflow.approve(ctx.session, ctx.actor, request_id, body, now_utc())
    ctx.commit(grants_changed=request.state == workflow.GRANTED)
    return views.request_view(ctx.session, request)


@router.post("/requests/{request_id}/refuse")
def refuse(ctx: Ctx, request_id: Id, body: Reason) -> dict[str, Any]:
    request = workflow.refuse(ctx.session, ctx.actor, request_id, body.reason, now_utc())
    ctx.commit()
    return views.request_view(ctx.session, request)


@router.post("/requests/{request_id}/withdraw")
def withdraw(ctx: Ctx, request_id: Id) -> dict[str, Any]:
    request = workflow.withdraw(ctx.session, ctx.actor, request_id, now_utc())
    ctx.commit()
    return views.request_view(ctx.session, request)


@router.get("/grants")
def list_grants(ctx: Ctx, active: bool = False) -> list[dict[str, Any]]:
    """Grants my department holds or provides (all of them for the platform admin)."""
    now = now_utc()
    rows = list(ctx.session.scalars(select(Grant).order_by(Grant.id)))
    if ctx.actor.role != people.PLATFORM_ADMIN:
        mine = ctx.actor.department_id
        rows = [
            g
            for g in rows
            if mine in (g.department_id, g.resource.provider_id)
            or any(s.department_id == mine for s in g.resource.sources)
        ]
    if active:
        rows = [g for g in rows if g.revoked_at is None and g.expires_at > now]
    return [views.grant_view(g) for g in rows]


@router.post("/grants/{grant_id}/revoke")
def revoke(ctx: Ctx, grant_id: Id, body: Reason) -> dict[str, Any]:
    grant = workflow.revoke(ctx.session, ctx.actor, grant_id, body.reason, now_utc())
    ctx.commit(grants_changed=True)
    return views.grant_view(grant)


@router.post("/demands", status_code=201)
def create_demand(ctx: Ctx, body: DemandCreate) -> dict[str, Any]:
    demand = demands.create(ctx.session, ctx.actor, body, now_utc())
    ctx.commit()
    return demands.view(ctx.session, demand)


@router.get("/demands")
def list_demands(ctx: Ctx) -> list[dict[str, Any]]:
    return [demands.view(ctx.session, d) for d in demands.visible(ctx.session, ctx.actor)]


@router.get("/demands/{demand_id}")
def show_demand(ctx: Ctx, demand_id: Id) -> dict[str, Any]:
    demand = demands.get(ctx.session, demand_id)
    if demand not in demands.visible(ctx.session, ctx.actor):
        raise Forbidden(f"user {ctx.actor.name} may not see demand {demand_id}")
    return demands.view(ctx.session, demand)


@router.post("/demands/{demand_id}/answer")
def answer_demand(ctx: Ctx, demand_id: Id, body: DemandAnswer) -> dict[str, Any]:
    demand = demands.answer(ctx.session, ctx.actor, demand_id, body, now_utc())
    ctx.commit()
    return demands.view(ctx.session, demand)

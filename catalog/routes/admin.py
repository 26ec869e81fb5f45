"""Routes: logging in, users and tokens, the audit trail, Trino's query events, publication."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog import audit, lake, people
from catalog.api import Ctx, catalog_of, session_of
from catalog.errors import Conflict, Forbidden, Invalid, Unauthenticated, Unavailable
from catalog.models import Department
from catalog.schemas import Login, TokenCreate, UserCreate
from catalog.security import audit_token, same_secret
from catalog.service import Catalog, now_utc

router = APIRouter(tags=["administration"])
UserName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{1,62}$")]


@router.post("/auth/login")
def login(body: Login, session: Annotated[Session, Depends(session_of)]) -> dict[str, str]:
    """Exchange a user name and password for a new bearer token (shown once)."""
    token = people.login(session, body.name, body.password, now_utc())
    session.commit()  # keep the audit row of a failed attempt too
    if token is None:
        raise Unauthenticated(f"wrong user name or password for {body.name!r}")
    return {"token": token}


@router.get("/me")
def me(ctx: Ctx) -> dict[str, Any]:
    return people.user_view(ctx.actor)


@router.get("/departments")
def departments(ctx: Ctx) -> list[dict[str, str]]:
    rows = ctx.session.scalars(select(Department).order_by(Department.code))
    return [{"code": d.code, "name_zh": d.name_zh, "org_code": d.org_code} for d in rows]


@router.post("/users", status_code=201)
def create_user(ctx: Ctx, body: UserCreate) -> dict[str, Any]:
    """A platform admin creates any user; a department admin, users of its department."""
    created = people.create_user(
        ctx.session,
        ctx.actor,
        name=body.name,
        role=body.role,
        department_code_=body.department,
        password=body.password,
        now=now_utc(),
    )
    ctx.commit(grants_changed=True)  # a new Trino user
    return people.user_view(created)


@router.get("/users")
def list_users(ctx: Ctx) -> list[dict[str, Any]]:
    return [people.user_view(u) for u in people.list_users(ctx.session, ctx.actor)]


@router.post("/users/{name}/tokens", status_code=201)
def create_token(ctx: Ctx, name: UserName, body: TokenCreate) -> dict[str, str]:
    """A new token for the user: returned once, only its hash is kept."""
    owner = people.user(ctx.session, name)
    token = people.create_token(ctx.session, ctx.actor, owner, body.label, now_utc())
    ctx.commit()
    return {"token": token}


@router.get("/audit/events")
def audit_events(ctx: Ctx) -> list[dict[str, Any]]:
    people.require_role(ctx.actor, (), "read the audit trail")
    return audit.events(ctx.session, None)


@router.post("/audit/trino-events", status_code=202)
def trino_event(
    catalog: Annotated[Catalog, Depends(catalog_of)],
    session: Annotated[Session, Depends(session_of)],
    payload: Annotated[dict[str, Any], Body()],
    x_datong_audit_token: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """Trino's HTTP event listener posts every completed query here."""
    if not same_secret(x_datong_audit_token, audit_token(catalog.settings.state_dir)):
        raise Forbidden("wrong or missing X-Datong-Audit-Token")
    try:
        parsed = audit.parse_query_event(payload)
    except audit.EventError as error:
        raise Invalid(f"not a query-completed event: {error}") from None
    stored = audit.store_query_event(session, parsed)
    session.commit()
    return {"query_id": parsed.query_id, "stored": stored}


@router.post("/admin/publish")
def publish(ctx: Ctx) -> dict[str, Any]:
    """Publish the grants in force to Trino now."""
    from catalog import grants
    from datong.query import QueryError

    people.require_role(ctx.actor, (), "publish grants")
    if not ctx.catalog.publish:
        raise Conflict("publication to Trino is turned off for this server")
    try:
        # Fresh gates, kept for the maintenance loop, which must not publish older ones.
        blocked = ctx.catalog.closed_gates(refresh=True)
        publication = grants.publish_grants(
            ctx.catalog.settings, ctx.session, now_utc(), blocked=blocked
        )
    except (OSError, NotImplementedError, ValueError, QueryError) as error:
        raise Unavailable(f"publishing the grants to Trino failed: {error}") from None
    ctx.commit()
    return {"published_at": publication.published_at.isoformat(), "grants": publication.grant_ids}


@router.post("/admin/lake-refresh")
def lake_refresh(ctx: Ctx) -> dict[str, Any]:
    """Read linked status, freshness and quality scores from the lake through Trino."""
    people.require_role(ctx.actor, (people.DATA_ENGINEER,), "refresh the lake status")
    status = lake.read_status(ctx.catalog.settings)
    linked = lake.apply_status(ctx.session, status, now_utc())
    audit.record(ctx.session, ctx.actor.name, "lake.refresh", "lake", now_utc(), linked=linked)
    ctx.commit()
    return {"linked": linked, "unknown": status.unknown}

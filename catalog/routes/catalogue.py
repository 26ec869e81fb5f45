"""Routes: finding and editing resources, the lists and figures, and who used what."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from catalog import audit, lists, people
from catalog import resources as catalogue
from catalog.api import Ctx
from catalog.schemas import ResourceEdit
from catalog.service import now_utc

router = APIRouter(tags=["catalogue"])
Name = Annotated[
    str, Path(min_length=3, max_length=128, pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
]
MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@router.get("/resources")
def list_resources(
    ctx: Ctx,
    q: Annotated[str | None, Query(max_length=100)] = None,
    provider: Annotated[str | None, Query(max_length=64)] = None,
    share_type: Literal["UNCONDITIONAL", "CONDITIONAL", "NOT_SHARED"] | None = None,
) -> list[dict[str, Any]]:
    found = catalogue.find(ctx.session, text=q, provider=provider, share_type=share_type)
    return [catalogue.summary_view(r) for r in found]


@router.get("/resources/{name}")
def show_resource(ctx: Ctx, name: Name) -> dict[str, Any]:
    return catalogue.view(catalogue.get(ctx.session, name))


@router.patch("/resources/{name}")
def edit_resource(ctx: Ctx, name: Name, body: ResourceEdit) -> dict[str, Any]:
    return catalogue.view(catalogue.edit(ctx.session, ctx.actor, name, body, now_utc()))


def _usage_tables(ctx: Ctx, resources: list[Any]) -> dict[str, str]:
    return {r.linked_table: r.name for r in resources if r.linked_table}


@router.get("/resources/{name}/usage")
def resource_usage(ctx: Ctx, name: Name) -> list[dict[str, Any]]:
    """Who read this resource through Trino (its provider and the platform admin only)."""
    resource = catalogue.get(ctx.session, name)
    owners = {d.id for d in catalogue.providers_of(resource)} | {resource.provider_id}
    people.require_department(
        ctx.actor, owners, (people.DEPARTMENT_ADMIN, people.REVIEWER), f"see who used {name}"
    )
    return audit.usage(ctx.session, _usage_tables(ctx, [resource]))


@router.get("/usage")
def my_usage(ctx: Ctx) -> list[dict[str, Any]]:
    """Who read any resource my department provides."""
    people.require_role(ctx.actor, (people.DEPARTMENT_ADMIN, people.REVIEWER), "see usage")
    mine = [
        r
        for r in catalogue.find(ctx.session)
        if ctx.actor.role == people.PLATFORM_ADMIN or r.provider_id == ctx.actor.department_id
    ]
    return audit.usage(ctx.session, _usage_tables(ctx, mine))


@router.get("/lists/{kind}", response_model=None)
def export_list(
    ctx: Ctx,
    kind: Literal["share", "responsibility", "negative"],
    format: Literal["json", "csv", "xlsx"] = "json",
) -> list[dict[str, Any]] | Response:
    """共享清单, 责任清单 or 负面清单, as JSON rows, CSV or XLSX."""
    if format == "json":
        return lists.rows(ctx.session, kind)
    body = lists.to_csv(ctx.session, kind) if format == "csv" else lists.to_xlsx(ctx.session, kind)
    filename = f"{kind}-list.{format}"
    return Response(
        body,
        media_type=MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/figures")
def figures(ctx: Ctx) -> dict[str, Any]:
    """挂接率 and counts by department, share type and grade."""
    return lists.figures(ctx.session)

"""``datong request …`` and ``datong review …``: the exchange from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from catalog.cli import (
    UserOption,
    _acting,
    _echo,
    _fail,
    _validated,
    demand_app,
    request_app,
    review_app,
)

Fields = Annotated[list[str] | None, typer.Option("--field", "-f", help="A field; repeat.")]
Divisions = Annotated[
    list[str] | None, typer.Option("--division", "-d", help="A division-code prefix; repeat.")
]


@request_app.command("create")
def create(
    resource: str,
    purpose: Annotated[str, typer.Option(help="What the data is for, and the basis.")],
    days: Annotated[int, typer.Option(help="How long the grant should last.")],
    field: Fields = None,
    division: Divisions = None,
    user: UserOption = None,
) -> None:
    """Ask for fields of a resource for your department."""
    from catalog import views, workflow
    from catalog.schemas import RequestCreate
    from catalog.service import now_utc

    if not field:
        _fail("name at least one --field")
    body = _validated(
        RequestCreate,
        resource=resource,
        purpose=purpose,
        fields=field,
        division_prefixes=division or None,
        duration_days=days,
    )
    with _acting(user) as (catalog, session, actor):
        request = workflow.create_request(session, actor, body, now_utc())
        view = views.request_view(session, request)
    if view["state"] == workflow.GRANTED:
        catalog.publish_if_changed()
    typer.echo(f"request {view['id']}: {view['state']} — {view['history'][-1]['reason']}")


@request_app.command("list")
def list_requests(
    box: Annotated[str, typer.Option(help="all, mine or inbox")] = "all",
    state: str | None = None,
    user: UserOption = None,
) -> None:
    from catalog import views

    with _acting(user) as (_, session, actor):
        for r in views.list_requests(session, actor, box, state):
            typer.echo(f"{r.id}\t{r.resource.name}\t{r.department.code}\t{r.state}")


@request_app.command("show")
def show(request_id: int, user: UserOption = None) -> None:
    """A request with its approvals, grant and full history."""
    from catalog import views, workflow
    from catalog.errors import Forbidden

    with _acting(user) as (_, session, actor):
        request = workflow.get_request(session, request_id)
        if not views.may_see(actor, request):
            raise Forbidden(f"user {actor.name} may not see request {request_id}")
        _echo(views.request_view(session, request))


@request_app.command("withdraw")
def withdraw(request_id: int, user: UserOption = None) -> None:
    from catalog import workflow
    from catalog.service import now_utc

    with _acting(user) as (_, session, actor):
        workflow.withdraw(session, actor, request_id, now_utc())
    typer.echo(f"request {request_id}: WITHDRAWN")


@demand_app.command("create")
def demand_create(
    provider: Annotated[str, typer.Option(help="The department asked to catalogue it.")],
    title: Annotated[str, typer.Option()],
    description: Annotated[str, typer.Option()],
    user: UserOption = None,
) -> None:
    """Ask a provider for data nobody has catalogued."""
    from catalog import demands
    from catalog.schemas import DemandCreate
    from catalog.service import now_utc

    body = _validated(DemandCreate, provider=provider, title=title, description=description)
    with _acting(user) as (_, session, actor):
        demand = demands.create(session, actor, body, now_utc())
        typer.echo(f"demand {demand.id}: OPEN, sent to {provider}")


@demand_app.command("list")
def demand_list(user: UserOption = None) -> None:
    from catalog import demands

    with _acting(user) as (_, session, actor):
        for d in demands.visible(session, actor):
            typer.echo(f"{d.id}\t{d.department.code} → {d.provider.code}\t{d.state}\t{d.title}")


@demand_app.command("refuse")
def demand_refuse(
    demand_id: int, reason: Annotated[str, typer.Option()], user: UserOption = None
) -> None:
    """The provider refuses a demand, with its reason."""
    from catalog import demands
    from catalog.schemas import DemandAnswer
    from catalog.service import now_utc

    body = _validated(DemandAnswer, decision="refuse", reason=reason)
    with _acting(user) as (_, session, actor):
        demands.answer(session, actor, demand_id, body, now_utc())
    typer.echo(f"demand {demand_id}: REFUSED")


@demand_app.command("catalogue")
def demand_catalogue(
    demand_id: int,
    resource_file: Annotated[Path, typer.Option(help="YAML of the resource (ResourceDraft).")],
    user: UserOption = None,
) -> None:
    """The provider answers a demand by cataloguing the resource described in a YAML file."""
    import yaml

    from catalog import demands
    from catalog.schemas import DemandAnswer
    from catalog.service import now_utc

    try:
        draft = yaml.safe_load(resource_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        _fail(f"{resource_file}: {error}")
    body = _validated(DemandAnswer, decision="catalogue", resource=draft)
    with _acting(user) as (_, session, actor):
        demands.answer(session, actor, demand_id, body, now_utc())
    typer.echo(f"demand {demand_id}: CATALOGUED as {draft['name']}")


@review_app.command("approve")
def approve(
    request_id: int,
    field: Fields = None,
    division: Divisions = None,
    days: Annotated[int | None, typer.Option(help="Grant for fewer days.")] = None,
    reason: str | None = None,
    user: UserOption = None,
) -> None:
    """Approve a request for your department's data, narrowing it if you want."""
    from catalog import workflow
    from catalog.schemas import Approve
    from catalog.service import now_utc

    body = _validated(
        Approve,
        fields=field or None,
        division_prefixes=division or None,
        duration_days=days,
        reason=reason,
    )
    with _acting(user) as (catalog, session, actor):
        request = workflow.approve(session, actor, request_id, body, now_utc())
        state = request.state
    if state == workflow.GRANTED:
        catalog.publish_if_changed()
    typer.echo(f"request {request_id}: {state}")


@review_app.command("refuse")
def refuse(
    request_id: int, reason: Annotated[str, typer.Option()], user: UserOption = None
) -> None:
    """Refuse a request, with the reason the requester will read."""
    from catalog import workflow
    from catalog.service import now_utc

    if len(reason.strip()) < 2:
        _fail("a refusal needs a reason")
    with _acting(user) as (_, session, actor):
        workflow.refuse(session, actor, request_id, reason, now_utc())
    typer.echo(f"request {request_id}: REFUSED")


@review_app.command("revoke")
def revoke(grant_id: int, reason: Annotated[str, typer.Option()], user: UserOption = None) -> None:
    """End a grant before it expires."""
    from catalog import workflow
    from catalog.service import now_utc

    if len(reason.strip()) < 2:
        _fail("a revocation needs a reason")
    with _acting(user) as (catalog, session, actor):
        workflow.revoke(session, actor, grant_id, reason, now_utc())
    catalog.publish_if_changed()
    typer.echo(f"grant {grant_id}: REVOKED")

"""``datong catalog|request|review …``: the catalogue from the command line.

The commands use the same service layer as the API, on the database directly, acting as a
named user (``--user``; the bootstrap platform admin by default) whose role is checked just
as the API checks it. Heavy imports happen inside the commands, so ``datong --help`` stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from catalog.models import User
    from catalog.service import Catalog

catalog_app = typer.Typer(
    help="The resource catalogue: sync, browse, lists, figures, grants.", no_args_is_help=True
)
users_app = typer.Typer(help="Users and their tokens.", no_args_is_help=True)
request_app = typer.Typer(
    help="Ask for data (共享申请) and for uncatalogued data (需求).", no_args_is_help=True
)
demand_app = typer.Typer(
    help="Demands for data nobody has catalogued (需求清单).", no_args_is_help=True
)
review_app = typer.Typer(
    help="Decide requests for your department's data; revoke grants.", no_args_is_help=True
)
catalog_app.add_typer(users_app, name="users")
request_app.add_typer(demand_app, name="demand")

UserOption = Annotated[str | None, typer.Option("--user", "-u", help="Act as this user.")]
T = TypeVar("T")


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _echo(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _catalog() -> Catalog:
    from catalog.service import Catalog
    from datong.settings import load_settings

    return Catalog(load_settings())


@contextmanager
def _acting(user: str | None) -> Iterator[tuple[Catalog, Session, User]]:
    """A transaction as ``user``; a refusal ends the command with exit code 1 and its message."""
    from catalog import people
    from catalog.errors import CatalogError
    from catalog.security import admin_secret

    catalog = _catalog()
    try:
        with catalog.session() as session:
            name = user or admin_secret(catalog.settings.state_dir)["user"]
            yield catalog, session, people.user(session, name)
    except CatalogError as error:
        _fail(error.message)


def _validated(model: Callable[..., T], **values: Any) -> T:
    from pydantic import ValidationError

    try:
        return model(**values)
    except ValidationError as error:
        details = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        _fail(details)


# -- catalog ---------------------------------------------------------------------------


@catalog_app.command("sync")
def sync() -> None:
    """Create or update departments and resources from schemas/ (idempotent)."""
    from catalog import sync as syncing
    from catalog.errors import CatalogError
    from catalog.service import now_utc

    catalog = _catalog()
    try:
        with catalog.session() as session:
            result = syncing.sync(session, catalog.settings.state_dir, now_utc())
    except CatalogError as error:
        _fail(error.message)
    typer.echo(
        f"departments created: {len(result.departments_created)}; resources created: "
        f"{len(result.created)}, updated: {len(result.updated)}, "
        f"unchanged: {len(result.unchanged)}"
    )
    if result.admin_created:
        secrets_file = catalog.settings.state_dir / "secrets" / "catalog-admin.json"
        typer.echo(f"platform admin created; its password and token are in {secrets_file}")


@catalog_app.command("list")
def list_resources(
    user: UserOption = None,
    provider: Annotated[str | None, typer.Option(help="Department code.")] = None,
    share_type: Annotated[str | None, typer.Option(help="UNCONDITIONAL, CONDITIONAL…")] = None,
    q: Annotated[str | None, typer.Option(help="Text to look for.")] = None,
) -> None:
    """The resources, by code."""
    from catalog import resources

    with _acting(user) as (_, session, _actor):
        for r in resources.find(session, text=q, provider=provider, share_type=share_type):
            typer.echo(f"{r.code}\t{r.name}\t{r.title_zh}\t{r.provider.code}\t{r.share_type}")


@catalog_app.command("show")
def show(name: str, user: UserOption = None) -> None:
    """Everything the catalogue holds about one resource."""
    from catalog import resources

    with _acting(user) as (_, session, _actor):
        _echo(resources.view(resources.get(session, name)))


@catalog_app.command("lists")
def export_list(
    kind: Annotated[str, typer.Argument(help="share, responsibility or negative")],
    out: Annotated[Path, typer.Option(help="File to write; .csv or .xlsx")],
    user: UserOption = None,
) -> None:
    """Export 共享清单 / 责任清单 / 负面清单 as CSV or XLSX."""
    from catalog import lists

    if kind not in lists.LISTS:
        _fail(f"unknown list {kind!r}: one of {', '.join(lists.LISTS)}")
    if out.suffix not in (".csv", ".xlsx"):
        _fail(f"{out}: the file must end in .csv or .xlsx")
    with _acting(user) as (_, session, _actor):
        body = lists.to_csv(session, kind) if out.suffix == ".csv" else lists.to_xlsx(session, kind)
    out.write_bytes(body)
    typer.echo(f"{lists.TITLES[kind]} written to {out}")


@catalog_app.command("figures")
def figures(
    user: UserOption = None,
    refresh: Annotated[bool, typer.Option(help="Ask the lake (Trino) first.")] = False,
) -> None:
    """挂接率 and counts by department, share type and grade."""
    from catalog import lake, lists
    from catalog.service import now_utc

    with _acting(user) as (catalog, session, _actor):
        if refresh:
            lake.apply_status(session, lake.read_status(catalog.settings), now_utc())
        _echo(lists.figures(session))


@catalog_app.command("publish")
def publish(user: UserOption = None) -> None:
    """Escalate and expire what is due, then publish the grants in force to Trino."""
    from catalog import grants, people, workflow
    from catalog.service import now_utc

    with _acting(user) as (catalog, session, actor):
        people.require_role(actor, (), "publish grants")
        changes = workflow.maintain(session, now_utc())
        publication = grants.publish_grants(catalog.settings, session, now_utc())
    typer.echo(
        f"published {len(publication.grant_ids)} grant(s); "
        f"expired {len(changes['expired'])}, escalated {len(changes['escalated'])}"
    )


@catalog_app.command("usage")
def usage(name: str, user: UserOption = None) -> None:
    """Who read this resource through Trino, and how."""
    from catalog import audit, people, resources

    with _acting(user) as (_, session, actor):
        resource = resources.get(session, name)
        owners = {d.id for d in resources.providers_of(resource)} | {resource.provider_id}
        people.require_department(
            actor, owners, (people.DEPARTMENT_ADMIN, people.REVIEWER), f"see who used {name}"
        )
        _echo(audit.usage(session, {resource.linked_table: name} if resource.linked_table else {}))


@users_app.command("list")
def users_list(user: UserOption = None) -> None:
    from catalog import people

    with _acting(user) as (_, session, actor):
        for found in people.list_users(session, actor):
            view = people.user_view(found)
            typer.echo(f"{view['name']}\t{view['role']}\t{view['department'] or '-'}")


@users_app.command("create")
def users_create(
    name: str,
    role: Annotated[str, typer.Option(help="platform_admin, department_admin, reviewer, …")],
    department: Annotated[str | None, typer.Option(help="Department code.")] = None,
    user: UserOption = None,
) -> None:
    """Create a user with a generated password, shown once."""
    import secrets

    from catalog import people
    from catalog.service import now_utc

    password = secrets.token_urlsafe(18)
    with _acting(user) as (_, session, actor):
        people.create_user(
            session,
            actor,
            name=name,
            role=role,
            department_code_=department,
            password=password,
            now=now_utc(),
        )
    typer.echo(f"user {name} created; password (shown once): {password}")


@users_app.command("token")
def users_token(name: str, label: str = "cli", user: UserOption = None) -> None:
    """A new API token for a user, shown once."""
    from catalog import people
    from catalog.service import now_utc

    with _acting(user) as (_, session, actor):
        token = people.create_token(session, actor, people.user(session, name), label, now_utc())
    typer.echo(token)

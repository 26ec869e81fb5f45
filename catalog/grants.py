"""Grants → Trino: the grants in force as ``warehouse.access`` rules, and their publication.

Whenever the set of grants in force (or the users) differs from what was last published —
a grant approved, revoked or past its expiry — :func:`publish_if_changed` writes Trino's
rules again. The API server calls it every few seconds, so expiry needs no human.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Collection, Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog import audit, workflow
from catalog.models import AccessRequest, Grant, Publication, Resource, User
from catalog.rules import mask_expression, mask_kind, row_filter
from datong.settings import Settings
from warehouse.access import Principal, TableGrant

log = logging.getLogger(__name__)


def _table_grant(grant: Grant) -> TableGrant:
    resource = grant.resource
    items = {item.name: item for item in resource.items}
    masks = {}
    for column in grant.fields:
        item = items[column]
        kind = mask_kind(item.name, item.grade, item.personal, item.standard)
        if kind is not None:
            masks[column] = mask_expression(column, kind)
    scope = None
    if resource.division_column is not None:
        scope = row_filter(resource.division_column, grant.division_prefixes)
    return TableGrant(
        grant_id=str(grant.id),
        group=grant.department.code,
        table=str(resource.linked_table),
        columns=tuple(grant.fields),
        masks=masks,
        row_filter=scope,
        expires_at=grant.expires_at,
    )


def active_grants(
    session: Session, now: dt.datetime, blocked: Collection[str] = ()
) -> list[TableGrant]:
    """Every grant in force at ``now``: approved, not revoked, not expired, on a linked table
    whose quality gate is not closed (``blocked`` tables are left out)."""
    query = (
        select(Grant)
        .join(AccessRequest, Grant.request_id == AccessRequest.id)
        .join(Resource, Grant.resource_id == Resource.id)
        .where(
            Grant.revoked_at.is_(None),
            Grant.expires_at > now,
            AccessRequest.state == workflow.GRANTED,
            Resource.linked_table.is_not(None),
        )
        .order_by(Grant.id)
    )
    found = [_table_grant(grant) for grant in session.scalars(query)]
    return [grant for grant in found if grant.table not in blocked]


def principals(session: Session) -> list[Principal]:
    """Every active user as a Trino user: its bcrypt hash, its department as its group."""
    users = session.scalars(select(User).where(User.active.is_(True)).order_by(User.name))
    return [
        Principal(
            user.name, user.password_bcrypt, (user.department.code,) if user.department else ()
        )
        for user in users
    ]


def table_columns(
    settings: Settings | None, session: Session, grants: Sequence[TableGrant]
) -> dict[str, list[str]]:
    """Each granted table's columns: Trino's own list when it answers, else the catalogue's."""
    tables = sorted({g.table for g in grants})
    columns: dict[str, list[str]] = {}
    for table in tables:
        resource = session.scalar(select(Resource).where(Resource.linked_table == table))
        columns[table] = [item.name for item in resource.items] if resource else []
    if settings is None or not tables:
        return columns
    from catalog.lake import LAKE_ERRORS
    from datong.query import run

    schemas = ", ".join(sorted({f"'{t.split('.')[0]}'" for t in tables}))
    try:
        result = run(
            settings,
            "SELECT table_schema, table_name, column_name FROM "
            f"lake.information_schema.columns WHERE table_schema IN ({schemas}) "
            "ORDER BY table_schema, table_name, ordinal_position",
        )
    except LAKE_ERRORS as error:
        log.warning("Trino did not list the tables' columns (%s): using the catalogue's", error)
        return columns
    actual: dict[str, list[str]] = {}
    for schema, table, column in result.rows:
        actual.setdefault(f"{schema}.{table}", []).append(column)
    return {table: actual.get(table, listed) for table, listed in columns.items()}


def digest(
    grants: Sequence[TableGrant], users: Sequence[Principal], blocked: Collection[str] = ()
) -> str:
    """A fingerprint of what would be published: equal fingerprints need no new publication."""
    data = [
        sorted(blocked),
        [
            [
                g.grant_id,
                g.group,
                g.table,
                list(g.columns),
                dict(g.masks),
                g.row_filter,
                g.expires_at.isoformat() if g.expires_at else None,
            ]
            for g in grants
        ],
        [[p.user, p.password_bcrypt, list(p.groups)] for p in users],
    ]
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def publish_grants(
    settings: Settings,
    session: Session,
    now: dt.datetime,
    columns: Mapping[str, Sequence[str]] | None = None,
    blocked: Mapping[str, str] | None = None,
) -> Publication:
    """Write Trino's rules, passwords and groups for the grants in force now.

    Grants on a table whose quality gate is closed (``blocked``: table → reasons, read from
    ``lake.quality.gate`` when not given) are held back, and the audit says why.
    """
    from catalog.lake import closed_gates
    from warehouse import access

    if blocked is None:
        blocked = closed_gates(settings)
    held = {g.table for g in active_grants(session, now)} & set(blocked)
    for table in sorted(held):
        log.warning("grants on %s held back: its quality gate is closed: %s", table, blocked[table])
    grants = active_grants(session, now, blocked)
    users = principals(session)
    access.publish(
        etc_dir=settings.state_dir / "trino" / "etc",
        grants=grants,
        principals=users,
        admin_user=settings.trino_admin_user,
        now=now,
        table_columns=columns if columns is not None else table_columns(settings, session, grants),
    )
    publication = Publication(
        published_at=now,
        grant_ids=[int(g.grant_id) for g in grants],
        digest=digest(grants, users, blocked),
    )
    session.add(publication)
    audit.record(
        session,
        "system",
        "grants.publish",
        "trino",
        now,
        grants=[g.grant_id for g in grants],
        users=len(users),
        held_by_quality_gate={table: blocked[table] for table in sorted(held)},
    )
    return publication


def last_publication(session: Session) -> Publication | None:
    return session.scalar(select(Publication).order_by(Publication.id.desc()).limit(1))


def publish_if_changed(
    settings: Settings,
    session: Session,
    now: dt.datetime,
    blocked: Mapping[str, str] | None = None,
) -> bool:
    """Publish when the grants in force, the users or the closed quality gates changed."""
    from catalog.lake import closed_gates

    last = last_publication(session)
    if last is None and not active_grants(session, now):
        # Nothing was ever granted: Trino's base rules already say so; leave its files alone.
        return False
    if blocked is None:
        blocked = closed_gates(settings)
    active = active_grants(session, now, blocked)
    if last is not None and last.digest == digest(active, principals(session), blocked):
        return False
    publish_grants(settings, session, now, blocked=blocked)
    return True

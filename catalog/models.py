"""The catalogue's tables: departments, users, resources and their data items, requests with
their approvals and full history, grants, demands, the audit trail and Trino's query log.

The schema is created only by the Alembic migrations in ``catalog/migrations``; a test
checks that these models and the migrations agree.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Named constraints, so migrations name them the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A moment in UTC: stored without zone (SQLite has none), always read back aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value}: catalogue times are aware (UTC)")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UTCDateTime(), dict[str, Any]: JSON}


class Department(Base):
    """A department (部门): supplies resources, requests others' and holds users."""

    __tablename__ = "department"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name_zh: Mapped[str] = mapped_column(String(200))
    org_code: Mapped[str] = mapped_column(String(16), unique=True)


class User(Base):
    """A person or system account with one role, in one department (none for the admin)."""

    __tablename__ = "user_account"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(32))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    # bcrypt (cost 10): the same hash Trino's password file checks.
    password_bcrypt: Mapped[str] = mapped_column(String(80))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime]
    department: Mapped[Department | None] = relationship()


class ApiToken(Base):
    """A bearer token: only its SHA-256 is stored; the token is shown once at creation."""

    __tablename__ = "api_token"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]
    user: Mapped[User] = relationship()


class Resource(Base):
    """A catalogued resource (政务信息资源) with its share and open attributes."""

    __tablename__ = "resource"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # department | base | manual
    title_zh: Mapped[str] = mapped_column(String(200))
    provider_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    summary: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(1))
    item: Mapped[str] = mapped_column(String(2))
    subject: Mapped[str] = mapped_column(String(3))
    detail: Mapped[str] = mapped_column(String(3))
    share_type: Mapped[str] = mapped_column(String(16))
    share_condition: Mapped[str | None] = mapped_column(Text)
    legal_basis: Mapped[str | None] = mapped_column(Text)
    share_method: Mapped[list[str]] = mapped_column(JSON)
    open_type: Mapped[str] = mapped_column(String(16))
    open_condition: Mapped[str | None] = mapped_column(Text)
    update_cycle: Mapped[str] = mapped_column(String(16))
    release_date: Mapped[dt.date]
    related: Mapped[list[str]] = mapped_column(JSON)
    division_column: Mapped[str | None] = mapped_column(String(64))
    linked_table: Mapped[str | None] = mapped_column(String(128))
    # What the lake says, refreshed through Trino: None means unknown.
    linked: Mapped[bool | None]
    freshness: Mapped[dt.datetime | None]
    quality_score: Mapped[float | None] = mapped_column(Float)
    lake_checked_at: Mapped[dt.datetime | None]
    # Hash of the contract last applied by `catalog sync`: unchanged contracts are skipped.
    contract_hash: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime]
    provider: Mapped[Department] = relationship()
    items: Mapped[list[DataItem]] = relationship(
        order_by="DataItem.position", cascade="all, delete-orphan"
    )
    sources: Mapped[list[ResourceSource]] = relationship(cascade="all, delete-orphan")


class DataItem(Base):
    """A data item (信息项) of a resource: a column with its type and grade."""

    __tablename__ = "data_item"
    __table_args__ = (UniqueConstraint("resource_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resource.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64))
    title_zh: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(32))
    grade: Mapped[str] = mapped_column(String(16))
    personal: Mapped[bool]
    standard: Mapped[str | None] = mapped_column(String(32))


class ResourceSource(Base):
    """A department whose data a fused (base-library) resource is built from (联合授权)."""

    __tablename__ = "resource_source"
    __table_args__ = (UniqueConstraint("resource_id", "department_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resource.id"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"))
    department: Mapped[Department] = relationship()


class AccessRequest(Base):
    """A department's request for a resource (共享申请): purpose, fields, rows, duration."""

    __tablename__ = "access_request"
    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resource.id"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    requester_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    purpose: Mapped[str] = mapped_column(Text)
    fields: Mapped[list[str]] = mapped_column(JSON)
    division_prefixes: Mapped[list[str] | None] = mapped_column(JSON)
    duration_days: Mapped[int]
    state: Mapped[str] = mapped_column(String(16), index=True)
    deadline: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]
    resource: Mapped[Resource] = relationship()
    department: Mapped[Department] = relationship()
    requester: Mapped[User] = relationship()
    approvals: Mapped[list[Approval]] = relationship(order_by="Approval.id")


class Approval(Base):
    """One provider's decision on a request; a fused resource needs one per provider."""

    __tablename__ = "approval"
    __table_args__ = (UniqueConstraint("request_id", "department_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("access_request.id"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"))
    state: Mapped[str] = mapped_column(String(16))  # PENDING | APPROVED | REFUSED
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    fields: Mapped[list[str] | None] = mapped_column(JSON)
    division_prefixes: Mapped[list[str] | None] = mapped_column(JSON)
    duration_days: Mapped[int | None]
    reason: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[dt.datetime | None]
    department: Mapped[Department] = relationship()


class Transition(Base):
    """One step of a request's or demand's life: who, when, from, to and why."""

    __tablename__ = "transition"
    id: Mapped[int] = mapped_column(primary_key=True)
    entity: Mapped[str] = mapped_column(String(16))  # request | demand
    entity_id: Mapped[int] = mapped_column(index=True)
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime]
    reason: Mapped[str | None] = mapped_column(Text)


class Grant(Base):
    """What a department may read of a resource, until when (授权)."""

    __tablename__ = "grant_"
    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("access_request.id"), unique=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resource.id"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    fields: Mapped[list[str]] = mapped_column(JSON)
    division_prefixes: Mapped[list[str] | None] = mapped_column(JSON)
    granted_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(64))
    revoke_reason: Mapped[str | None] = mapped_column(Text)
    resource: Mapped[Resource] = relationship()
    department: Mapped[Department] = relationship()


class Demand(Base):
    """A demand for data nobody has catalogued (需求清单), addressed to one provider."""

    __tablename__ = "demand"
    id: Mapped[int] = mapped_column(primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    requester_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    provider_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))  # OPEN | CATALOGUED | REFUSED
    resource_id: Mapped[int | None] = mapped_column(ForeignKey("resource.id"))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime]
    department: Mapped[Department] = relationship(foreign_keys=[department_id])
    provider: Mapped[Department] = relationship(foreign_keys=[provider_id])


class AuditEvent(Base):
    """One catalogue action: who did what to which thing, and the details."""

    __tablename__ = "audit_event"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(32), index=True)
    target: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


class QueryEvent(Base):
    """One query Trino completed, as its event listener reported it."""

    __tablename__ = "query_event"
    id: Mapped[int] = mapped_column(primary_key=True)
    query_id: Mapped[str] = mapped_column(String(64), unique=True)
    user: Mapped[str] = mapped_column(String(64), index=True)
    source: Mapped[str | None] = mapped_column(String(100))
    sql: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    error_name: Mapped[str | None] = mapped_column(String(100))
    error_message: Mapped[str | None] = mapped_column(Text)
    output_rows: Mapped[int | None]
    started_at: Mapped[dt.datetime | None]
    ended_at: Mapped[dt.datetime | None]
    inputs: Mapped[list[QueryInput]] = relationship(cascade="all, delete-orphan")


class QueryInput(Base):
    """A table a query read, with the columns it read."""

    __tablename__ = "query_input"
    id: Mapped[int] = mapped_column(primary_key=True)
    query_event_id: Mapped[int] = mapped_column(ForeignKey("query_event.id"), index=True)
    catalog_name: Mapped[str] = mapped_column(String(64))
    table_name: Mapped[str] = mapped_column(String(128), index=True)  # <schema>.<table>
    columns: Mapped[list[str]] = mapped_column(JSON)


class Publication(Base):
    """A publication of the grants to Trino: when, and the grants it carried."""

    __tablename__ = "publication"
    id: Mapped[int] = mapped_column(primary_key=True)
    published_at: Mapped[dt.datetime]
    grant_ids: Mapped[list[int]] = mapped_column(JSON)
    digest: Mapped[str] = mapped_column(String(64))

"""Departments, users, roles and tokens: who may do what in the catalogue.

Roles (least privilege): ``platform_admin`` (数据局: departments, users, escalated requests,
any revocation), ``department_admin`` (its department's users and resources), ``reviewer``
(decides requests for its department's resources), ``data_engineer`` and ``analyst``
(read the catalogue, request data for their department).
"""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog import audit
from catalog.errors import Conflict, Forbidden, Invalid, NotFound, Unauthenticated
from catalog.models import ApiToken, Department, User
from catalog.security import check_password, hash_password, new_token, token_hash

PLATFORM_ADMIN = "platform_admin"
DEPARTMENT_ADMIN = "department_admin"
DATA_ENGINEER = "data_engineer"
REVIEWER = "reviewer"
ANALYST = "analyst"
ROLES = (PLATFORM_ADMIN, DEPARTMENT_ADMIN, DATA_ENGINEER, REVIEWER, ANALYST)
#: Who may ask for data on behalf of a department.
REQUESTERS = (DEPARTMENT_ADMIN, DATA_ENGINEER, ANALYST)
USER_NAME = re.compile(r"^[a-z][a-z0-9_]{1,62}$")


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def department(session: Session, code: str) -> Department:
    found = session.scalar(select(Department).where(Department.code == code))
    if found is None:
        raise NotFound(f"no department {code!r}")
    return found


def user(session: Session, name: str) -> User:
    found = session.scalar(select(User).where(User.name == name))
    if found is None:
        raise NotFound(f"no user {name!r}")
    return found


def department_code(actor: User) -> str | None:
    return actor.department.code if actor.department else None


def require_role(actor: User, roles: tuple[str, ...], action: str) -> None:
    """Refuse unless the actor has one of ``roles`` (the platform admin always may)."""
    if actor.role != PLATFORM_ADMIN and actor.role not in roles:
        raise Forbidden(
            f"user {actor.name} ({actor.role}) may not {action}: needs {'/'.join(roles)}"
        )


def require_department(
    actor: User, departments: set[int], roles: tuple[str, ...], action: str
) -> None:
    """Refuse unless the actor has one of ``roles`` in one of ``departments`` (or is admin)."""
    if actor.role == PLATFORM_ADMIN:
        return
    require_role(actor, roles, action)
    if actor.department_id not in departments:
        raise Forbidden(
            f"user {actor.name} of {department_code(actor)} may not {action}: "
            "it belongs to another department"
        )


def _check_password(name: str, password: str) -> None:
    if len(password) < 12:
        raise Invalid(f"password of {name}: at least 12 characters")
    if len(password.encode("utf-8")) > 72:
        raise Invalid(f"password of {name}: at most 72 bytes in UTF-8 (bcrypt's limit)")


def create_user(
    session: Session,
    actor: User | None,
    *,
    name: str,
    role: str,
    department_code_: str | None,
    password: str,
    now: dt.datetime,
) -> User:
    """A new user; a department admin creates users of its own department only."""
    if not USER_NAME.fullmatch(name):
        raise Invalid(f"user name {name!r}: lower-case letters, digits and _, 2 to 63 long")
    if role not in ROLES:
        raise Invalid(f"role {role!r}: one of {', '.join(ROLES)}")
    _check_password(name, password)
    home = department(session, department_code_) if department_code_ else None
    if role != PLATFORM_ADMIN and home is None:
        raise Invalid(f"user {name} ({role}) must belong to a department")
    if role == PLATFORM_ADMIN and home is not None:
        raise Invalid("a platform admin belongs to no department")
    if actor is not None:
        if actor.role == DEPARTMENT_ADMIN:
            if role == PLATFORM_ADMIN or home is None or home.id != actor.department_id:
                raise Forbidden(
                    f"department admin {actor.name} creates users of {department_code(actor)} only"
                )
        else:
            require_role(actor, (), "create users")
    if session.scalar(select(User).where(User.name == name)) is not None:
        raise Conflict(f"user {name!r} exists already")
    created = User(
        name=name,
        role=role,
        department=home,
        password_bcrypt=hash_password(password),
        active=True,
        created_at=now,
    )
    session.add(created)
    session.flush()
    audit.record(
        session,
        actor.name if actor else "system",
        "user.create",
        f"user:{name}",
        now,
        role=role,
        department=department_code_,
    )
    return created


def create_token(session: Session, actor: User, owner: User, label: str, now: dt.datetime) -> str:
    """A new bearer token for ``owner``; the token itself is returned once, never stored."""
    if actor.id != owner.id:
        home = {owner.department_id} if owner.department_id else set()
        require_department(actor, home, (DEPARTMENT_ADMIN,), f"create tokens for {owner.name}")
    token = new_token()
    session.add(
        ApiToken(
            user_id=owner.id,
            token_sha256=token_hash(token),
            label=label,
            created_at=now,
            revoked_at=None,
        )
    )
    audit.record(session, actor.name, "token.create", f"user:{owner.name}", now, label=label)
    return token


def store_token(session: Session, owner: User, token: str, label: str, now: dt.datetime) -> None:
    """Keep the hash of a token made elsewhere (the bootstrap admin's), once."""
    digest = token_hash(token)
    if session.scalar(select(ApiToken).where(ApiToken.token_sha256 == digest)) is None:
        session.add(
            ApiToken(
                user_id=owner.id, token_sha256=digest, label=label, created_at=now, revoked_at=None
            )
        )


def authenticate(session: Session, token: str | None) -> User:
    """The active user whose unrevoked token this is."""
    if not token:
        raise Unauthenticated("missing bearer token (Authorization: Bearer <token>)")
    row = session.scalar(select(ApiToken).where(ApiToken.token_sha256 == token_hash(token)))
    if row is None or row.revoked_at is not None or not row.user.active:
        raise Unauthenticated("unknown, revoked or inactive token")
    return row.user


def login(session: Session, name: str, password: str, now: dt.datetime) -> str | None:
    """A new token for the right password, else None; every attempt is audited.

    A failure returns rather than raises, so its audit row is committed with the session.
    """
    found = session.scalar(select(User).where(User.name == name))
    if found is None or not found.active or not check_password(password, found.password_bcrypt):
        audit.record(session, name, "login.failed", f"user:{name}", now)
        return None
    token = new_token()
    session.add(
        ApiToken(
            user_id=found.id,
            token_sha256=token_hash(token),
            label="login",
            created_at=now,
            revoked_at=None,
        )
    )
    audit.record(session, name, "login", f"user:{name}", now)
    return token


def user_view(found: User) -> dict[str, object]:
    return {
        "name": found.name,
        "role": found.role,
        "active": found.active,
        "department": found.department.code if found.department else None,
    }


def set_password(
    session: Session, actor: User, owner: User, password: str, now: dt.datetime
) -> None:
    if actor.id != owner.id:
        home = {owner.department_id} if owner.department_id else set()
        require_department(actor, home, (DEPARTMENT_ADMIN,), f"set the password of {owner.name}")
    _check_password(owner.name, password)
    owner.password_bcrypt = hash_password(password)
    audit.record(session, actor.name, "user.password", f"user:{owner.name}", now)


def list_users(session: Session, actor: User) -> list[User]:
    query = select(User).order_by(User.name)
    if actor.role != PLATFORM_ADMIN:
        require_role(actor, (DEPARTMENT_ADMIN,), "list users")
        query = query.where(User.department_id == actor.department_id)
    return list(session.scalars(query))

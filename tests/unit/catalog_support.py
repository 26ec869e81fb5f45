"""Shared fixtures of the catalogue tests: a synced catalogue with users, on SQLite (copied
from one template per run) or on this run's real PostgreSQL (cloned from a template DB)."""

from __future__ import annotations

import datetime as dt
import itertools
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog import db, people
from catalog.sync import sync

#: A Monday, so working-day arithmetic is easy to check by hand.
NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
PASSWORD = "correct-horse-battery"
#: (name, role, department): providers' reviewers and admins, requesters.
USERS = [
    ("ga_admin", "department_admin", "public_security"),
    ("ga_reviewer", "reviewer", "public_security"),
    ("mz_reviewer", "reviewer", "civil_affairs"),
    ("jy_reviewer", "reviewer", "education"),
    ("rs_reviewer", "reviewer", "human_resources"),
    ("sw_reviewer", "reviewer", "tax"),
    ("wj_admin", "department_admin", "health"),
    ("wj_analyst", "analyst", "health"),
    ("wj_reviewer", "reviewer", "health"),
]
_counter = itertools.count()


def build(url: str, state_dir: Path) -> None:
    db.migrate(url)
    with db.session_scope(url) as session:
        sync(session, state_dir, NOW)
        for name, role, department in USERS:
            people.create_user(
                session,
                None,
                name=name,
                role=role,
                department_code_=department,
                password=PASSWORD,
                now=NOW,
            )
    db.engine_for(url).dispose()


@pytest.fixture(scope="session")
def catalog_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One state dir for the whole run: it holds the bootstrap admin's secret."""
    return tmp_path_factory.mktemp("catalog-state")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory, catalog_state: Path) -> Path:
    path = tmp_path_factory.mktemp("catalog-template") / "catalog.db"
    build(f"sqlite:///{path}", catalog_state)
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres_settings, catalog_state: Path) -> tuple[object, str]:
    from datong.services.postgres import ensure_database

    # One template per test module that imports these fixtures: each gets its own name.
    url = ensure_database(postgres_settings, f"catalog_template_{secrets.token_hex(4)}")
    build(url, catalog_state)
    return postgres_settings, url


def _postgres_copy(template: tuple[object, str]) -> str:
    from sqlalchemy import create_engine, make_url, text

    from datong.services.postgres import postgres_admin_url

    settings, url = template
    template_name = make_url(url).database
    name = f"catalog_test_{next(_counter)}_{secrets.token_hex(3)}"
    admin = create_engine(postgres_admin_url(settings), isolation_level="AUTOCOMMIT")  # type: ignore[arg-type]
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        connection.execute(
            text(f"CREATE DATABASE {name} TEMPLATE {template_name} OWNER {template_name}")
        )
    admin.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh synced catalogue with the USERS, for one test."""
    if request.param == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        shutil.copyfile(template, tmp_path / "catalog.db")
        url = f"sqlite:///{tmp_path / 'catalog.db'}"
    else:
        url = _postgres_copy(request.getfixturevalue("postgres_template"))
    yield url
    db.engine_for(url).dispose()

"""The catalogue as a running service: a real uvicorn process started like `datong up` starts
it (on SQLite and on PostgreSQL), Trino's event hook over real HTTP, and the lake's linked
status read from a real Trino."""

from __future__ import annotations

import http.client
import json
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from catalog import db, lake, lists
from catalog.security import admin_secret, audit_token
from catalog.sync import sync
from datong.services import process
from datong.services.catalog import catalog_healthy, catalog_spec
from datong.services.process import free_port
from datong.settings import Settings

pytestmark = pytest.mark.integration
DATA = Path(__file__).resolve().parent.parent / "data" / "trino"


@pytest.fixture
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """The API server on a free port over SQLite, or over this run's PostgreSQL."""
    url = ""
    if getattr(request, "param", "sqlite") == "postgresql":
        from datong.services.postgres import ensure_database

        url = ensure_database(request.getfixturevalue("postgres_settings"), "catalog_served")
    settings = Settings(
        state_dir=tmp_path,
        catalog_port=free_port(),
        trino_port=free_port(),
        catalog_database_url=url,
    )
    spec = catalog_spec(settings)
    process.start(spec)
    try:
        yield settings
    finally:
        process.stop(spec)


@pytest.mark.parametrize("served", ["sqlite", "postgresql"], indirect=True)
def test_the_server_serves_the_catalogue_and_the_audit_hook(served):
    from catalog.service import now_utc

    # The server migrated the database on start; sync through the same service layer.
    with db.session_scope(served.catalog_database_url) as session:
        sync(session, served.state_dir, now_utc())
    base = served.catalog_url
    assert httpx.get(f"{base}/docs").status_code == 200
    assert "/requests" in httpx.get(f"{base}/openapi.json").json()["paths"]
    token = admin_secret(served.state_dir)["token"]
    headers = {"Authorization": f"Bearer {token}"}
    resources = httpx.get(f"{base}/resources", headers=headers).json()
    assert "bronze.household_register" in {r["name"] for r in resources}
    payload = json.loads((DATA / "query_completed.json").read_text())
    hook = f"{base}/audit/trino-events"
    assert httpx.post(hook, json=payload).status_code == 403
    stored = httpx.post(
        hook, json=payload, headers={"X-Datong-Audit-Token": audit_token(served.state_dir)}
    )
    assert stored.status_code == 202 and stored.json() == {
        "query_id": "20261201_091739_00028_hnspk",
        "stored": True,
    }


def test_an_idle_connection_outlives_a_clients_keep_alive(served):
    """A pooled connection idle for longer than httpx keeps one (5 s) still answers: the
    server must not close it first, or a client reusing it just then gets "Server
    disconnected without sending a response" (uvicorn's default closes after 5 s)."""
    connection = http.client.HTTPConnection("127.0.0.1", served.catalog_port, timeout=10)
    try:
        connection.request("GET", "/openapi.json")
        first = connection.getresponse()
        assert first.status == 200 and first.read()
        opened = connection.sock
        time.sleep(6.5)
        connection.request("GET", "/openapi.json")
        second = connection.getresponse()
        assert second.status == 200 and second.read()
        assert connection.sock is opened, "the request went over a new connection"
    finally:
        connection.close()


@pytest.mark.parametrize("platform_settings", ["file"], indirect=True)
def test_datong_up_starts_the_catalogue_and_the_lake_says_what_is_linked(platform_settings):
    from datong.query import run

    assert catalog_healthy(platform_settings), "platform.up starts the catalogue after Trino"
    state = Path(tempfile.mkdtemp(prefix="catalog-lake-"))
    url = f"sqlite:///{state / 'catalog.db'}"
    table = f"catalog_probe_{secrets.token_hex(3)}"
    try:
        db.migrate(url)
        from catalog.service import now_utc

        with db.session_scope(url) as session:
            sync(session, state, now_utc())
        run(platform_settings, f"CREATE VIEW lake.open.{table} AS SELECT 1 AS x")
        status = lake.read_status(platform_settings)
        assert status.tables is not None and f"open.{table}" in status.tables
        with db.session_scope(url) as session:
            from catalog import resources

            probe = resources.get(session, "bronze.standard_address")
            probe.linked_table = f"open.{table}"
            lake.apply_status(session, status, now_utc())
            assert probe.linked is True
            figures = lists.figures(session)
            # Every other resource is linked only if its table exists in this lake.
            expected = sum(1 for r in resources.find(session) if r.linked_table in status.tables)
            assert figures["linked"] == expected >= 1
            assert figures["unknown_link"] == 0
            if "quality.score" not in status.tables:
                assert "quality score" in status.unknown and probe.quality_score is None
    finally:
        run(platform_settings, f"DROP VIEW IF EXISTS lake.open.{table}")
        db.engine_for(url).dispose()
        shutil.rmtree(state, ignore_errors=True)

"""Shared fixtures: one Spark session per test run, platforms started once per storage root."""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import threading
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from datong.services.process import free_port
from datong.settings import Settings

# py4j logs its connection shutdown from __del__ at interpreter exit, after pytest has
# closed the captured streams: a harmless "Logging error" traceback at the end of the run.
logging.getLogger("py4j").setLevel(logging.WARNING)


def _free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


@pytest.fixture(scope="session")
def s3_test_settings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Ports and credentials of this run's own SeaweedFS, never the user's running one."""
    ports = _free_ports(8)
    return {
        "seaweed_master_port": ports[0],
        "seaweed_master_grpc_port": ports[1],
        "seaweed_volume_port": ports[2],
        "seaweed_volume_grpc_port": ports[3],
        "seaweed_filer_port": ports[4],
        "seaweed_filer_grpc_port": ports[5],
        "s3_endpoint": f"http://127.0.0.1:{ports[6]}",
        "seaweed_s3_grpc_port": ports[7],
        "s3_access_key": "test-" + secrets.token_hex(4),
        "s3_secret_key": secrets.token_urlsafe(24),
    }


def make_settings(state_dir: Path, root: str, s3: dict[str, object], **extra: object) -> Settings:
    storage_root = "s3://datong-test/lake" if root == "s3" else (state_dir / "lake").as_uri()
    # A free catalogue port: a test Trino must never post its audit events to a catalogue
    # the user runs on the default port.
    extra.setdefault("catalog_port", free_port())
    return Settings(
        state_dir=state_dir,
        storage_root=storage_root,
        trino_port=free_port(),
        spark_master="local[2]",
        **s3,  # type: ignore[arg-type]
        **extra,  # type: ignore[arg-type]
    )


# -- Trino users of the test platforms -------------------------------------------------------

#: Authenticated users without any grant (tests check that Trino denies them), all with
#: this one password; the catalogue's users are published the same way (warehouse.access).
UNGRANTED_USERS = ("analyst", "analyst_without_grant", "someone_ungranted", "nobody")
UNGRANTED_PASSWORD = "ungranted-" + secrets.token_urlsafe(12)


def trino_etc(settings: Settings) -> Path:
    from datong.services.trino import trino_etc_dir

    return trino_etc_dir(settings)


def publish_test_access(
    settings: Settings,
    grants: Iterable[Any] = (),
    principals: Iterable[Any] = (),
    table_columns: dict[str, list[str]] | None = None,
    now: dt.datetime | None = None,
) -> None:
    """Publish these grants and principals, plus the ungranted users every test relies on."""
    import bcrypt

    from warehouse.access import Principal, publish

    hashed = bcrypt.hashpw(UNGRANTED_PASSWORD.encode(), bcrypt.gensalt(8)).decode()
    everyone = [Principal(user, hashed) for user in UNGRANTED_USERS] + list(principals)
    publish(
        trino_etc(settings),
        grants=grants,
        principals=everyone,
        admin_user=settings.trino_admin_user,
        now=now or dt.datetime.now(dt.UTC),
        table_columns=table_columns or {},
    )


def wait_until_authenticated(settings: Settings, user: str, password: str) -> None:
    """Poll (up to ~15 s) until Trino has reread password.db and accepts this user."""
    import time

    from datong import query

    deadline = time.monotonic() + 15
    while True:
        try:
            query.run(settings, "SELECT 1", user=user, password=password)
            return
        except query.AuthenticationError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


class AuditReceiver:
    """A stdlib HTTP server standing in for the catalogue's audit endpoint."""

    def __init__(self) -> None:
        self.token = "audit-" + secrets.token_urlsafe(16)
        self.events: list[dict[str, Any]] = []
        self.rejected = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("X-Datong-Audit-Token") != receiver.token:
                    receiver.rejected += 1
                    self.send_response(403)
                else:
                    receiver.events.append({"path": self.path, "event": json.loads(body or b"{}")})
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/audit/trino-events"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def audit_receiver() -> Iterator[AuditReceiver]:
    receiver = AuditReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory, s3_test_settings: dict[str, object]):
    """One Spark session for the whole run, able to reach both file:// and this run's S3."""
    from datong.spark import spark_session

    state = tmp_path_factory.mktemp("spark-state")
    settings = make_settings(state, "s3", s3_test_settings)
    session = spark_session(settings, "datong-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session", params=["file", "s3"])
def platform_settings(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    s3_test_settings: dict[str, object],
    audit_receiver: AuditReceiver,
) -> Iterator[Settings]:
    """A running embedded platform (Trino, plus SeaweedFS for s3://), once per storage root.

    Trino posts its audit events to ``audit_receiver``; the users of UNGRANTED_USERS can
    log in (password UNGRANTED_PASSWORD) and hold no grant.
    """
    from datong import secrets as datong_secrets
    from datong.services import platform

    state = tmp_path_factory.mktemp(f"platform-{request.param}")
    settings = make_settings(
        state, request.param, s3_test_settings, trino_audit_url=audit_receiver.url
    )
    # The receiver checks the token Trino sends: the same one the catalogue would check.
    datong_secrets.load_or_create(state, "audit", {"token": audit_receiver.token})
    platform.up(settings)
    try:
        publish_test_access(settings)
        wait_until_authenticated(settings, UNGRANTED_USERS[0], UNGRANTED_PASSWORD)
        yield settings
    finally:
        platform.down(settings)


@pytest.fixture(scope="session")
def postgres_settings() -> Iterator[Settings]:
    """This run's own PostgreSQL on a free port, in a fresh state dir; stopped at the end."""
    import shutil
    import tempfile

    from datong.services import platform

    # Not under pytest's basetemp: that is private to the user running pytest (0700), and
    # under root the server runs as the `postgres` OS user, which must reach its directory.
    state = Path(tempfile.mkdtemp(prefix="datong-pg-test-"))
    state.chmod(0o711)
    settings = Settings(state_dir=state, postgres_port=free_port())
    try:
        platform.up(settings, services=["postgres"])
        yield settings
    finally:
        platform.down(settings)
        shutil.rmtree(state, ignore_errors=True)

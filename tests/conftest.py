"""Shared fixtures: one Spark session per test run, platforms started once per storage root."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from datong.services.process import free_port
from datong.settings import Settings

# Trino users and the audit receiver live in tests/trino_support.py: pytest imports this
# file as `conftest`, and a test's `from tests.conftest import ...` would load a second copy
# with its own random password.
from tests.trino_support import (
    UNGRANTED_PASSWORD,
    UNGRANTED_USERS,
    AuditReceiver,
    publish_test_access,
    wait_until_authenticated,
)

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

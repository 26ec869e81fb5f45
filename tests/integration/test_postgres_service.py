"""The embedded PostgreSQL: started, reached with passwords, databases made, stopped cleanly."""

from __future__ import annotations

import contextlib
import os
import pwd
import stat
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, make_url, text

from datong.services import platform
from datong.services.postgres import ensure_database, postgres_admin_url, postgres_bin_dir
from datong.services.process import port_in_use
from datong.settings import Settings

pytestmark = pytest.mark.integration


def _query(url: str, statement: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement))
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def _connect(settings: Settings, user: str, password: str, dbname: str) -> psycopg.Connection:
    # passfile=/dev/null: no ~/.pgpass may log anyone in behind the test's back.
    return psycopg.connect(
        host="127.0.0.1",
        port=settings.postgres_port,
        user=user,
        password=password,
        dbname=dbname,
        passfile="/dev/null",
        connect_timeout=5,
    )


def _server_account() -> int:
    return pwd.getpwnam("postgres").pw_uid if os.geteuid() == 0 else os.geteuid()


def _processes_in(directory: Path) -> list[int]:
    """Pids whose working directory is ``directory`` (every PostgreSQL process chdirs there)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if Path(os.readlink(entry / "cwd")) == directory:
                    found.append(int(entry.name))
    return found


def test_server_answers_on_its_own_port(postgres_settings: Settings) -> None:
    rows = _query(
        postgres_admin_url(postgres_settings),
        "select version(), inet_server_addr()::text, current_setting('port'), "
        "current_setting('server_encoding'), current_setting('lc_collate')",
    )
    version, address, port, encoding, collate = rows[0]
    assert version.startswith("PostgreSQL ")
    assert f"PostgreSQL {postgres_bin_dir().parent.name}." in version
    assert address.split("/")[0] == "127.0.0.1"
    assert int(port) == postgres_settings.postgres_port != 5432
    assert encoding == "UTF8"
    assert collate == "C.UTF-8"
    # `datong status` shows it.
    shown = {item.name: item for item in platform.status(postgres_settings)}
    assert shown["postgres"].healthy
    assert shown["postgres"].ports == [postgres_settings.postgres_port]


def test_ensure_database_is_idempotent_and_the_owner_can_work(
    postgres_settings: Settings,
) -> None:
    url = ensure_database(postgres_settings, "dept_civil")
    assert ensure_database(postgres_settings, "dept_civil") == url
    assert url.startswith("postgresql+psycopg://dept_civil:")
    assert url.endswith(f"@127.0.0.1:{postgres_settings.postgres_port}/dept_civil")

    _query(url, "create table if not exists person (id int primary key, name text)")
    _query(url, "insert into person values (1, '张三') on conflict do nothing")
    assert _query(url, "select name from person") == [("张三",)]

    admin = postgres_admin_url(postgres_settings)
    assert _query(admin, "select count(*) from pg_database where datname = 'dept_civil'") == [(1,)]
    assert _query(
        admin, "select pg_get_userbyid(datdba) from pg_database where datname = 'dept_civil'"
    ) == [("dept_civil",)]
    # Stored as a SCRAM verifier, never as the password itself.
    [(stored,)] = _query(admin, "select rolpassword from pg_authid where rolname = 'dept_civil'")
    assert stored.startswith("SCRAM-SHA-256$")
    # Names that could hurt are refused before any SQL is sent.
    for bad in ("postgres", "pg_x", "Dept", "a; drop table x", ""):
        with pytest.raises(ValueError):
            ensure_database(postgres_settings, bad)


def test_given_owner_password_is_the_one_that_logs_in(postgres_settings: Settings) -> None:
    url = ensure_database(postgres_settings, "dept_given", owner_password="chosen-Pass_1")
    with _connect(postgres_settings, "dept_given", "chosen-Pass_1", "dept_given") as conn:
        assert conn.execute("select current_user").fetchone() == ("dept_given",)
    assert _query(url, "select 1") == [(1,)]


def test_wrong_or_missing_password_is_refused(postgres_settings: Settings) -> None:
    ensure_database(postgres_settings, "dept_civil")
    for user in ("postgres", "dept_civil"):
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            _connect(postgres_settings, user, "not-the-password", "postgres")
        with pytest.raises(psycopg.OperationalError, match="no password supplied"):
            _connect(postgres_settings, user, "", "postgres")
    # Every pg_hba rule asks for SCRAM: no trust, no peer, no md5.
    methods = _query(
        postgres_admin_url(postgres_settings), "select distinct auth_method from pg_hba_file_rules"
    )
    assert methods == [("scram-sha-256",)]


def test_a_department_role_cannot_enter_another_departments_database(
    postgres_settings: Settings,
) -> None:
    ensure_database(postgres_settings, "dept_civil")
    other = ensure_database(postgres_settings, "dept_tax")
    password = make_url(other).password
    assert password
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        _connect(postgres_settings, "dept_tax", password, "dept_civil")


def test_data_dir_and_secrets_are_private(postgres_settings: Settings) -> None:
    state = postgres_settings.state_dir
    base = state / "postgres"
    for directory in (base, base / "data", base / "socket"):
        info = directory.stat()
        assert stat.S_IMODE(info.st_mode) == 0o700, directory
        assert info.st_uid == _server_account(), directory
    assert stat.S_IMODE((state / "secrets").stat().st_mode) == 0o700
    ensure_database(postgres_settings, "dept_civil")
    for name in ("postgres.json", "postgres-role-dept_civil.json"):
        assert stat.S_IMODE((state / "secrets" / name).stat().st_mode) == 0o600, name
    # initdb's password file is gone, and no password reached the log.
    assert not list(base.glob("*password*"))
    log = (state / "run" / "postgres.log").read_text(errors="replace")
    admin_password = make_url(postgres_admin_url(postgres_settings)).password
    assert admin_password
    assert admin_password not in log
    assert "database system is ready to accept connections" in log


def test_stop_is_fast_leaves_no_process_and_a_restart_keeps_the_data(
    postgres_settings: Settings,
) -> None:
    url = ensure_database(postgres_settings, "dept_civil")
    _query(url, "create table if not exists kept (v int)")
    _query(url, "insert into kept values (42)")
    data_dir = postgres_settings.state_dir / "postgres" / "data"
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    assert _processes_in(data_dir)

    # A client still connected: a "smart" shutdown (SIGTERM) would wait for it to leave.
    client = psycopg.connect(postgres_admin_url(postgres_settings).replace("+psycopg", ""))
    try:
        began = time.monotonic()
        assert platform.down(postgres_settings) == ["postgres"]
        took = time.monotonic() - began
    finally:
        with contextlib.suppress(psycopg.Error):
            client.close()
    assert took < 10, f"stop took {took:.1f}s"
    assert not (data_dir / "postmaster.pid").exists()  # removed by a clean shutdown only
    with pytest.raises(ProcessLookupError):
        os.killpg(postmaster, 0)
    assert _processes_in(data_dir) == []
    assert not port_in_use(postgres_settings.postgres_port)
    shown = {item.name: item for item in platform.status(postgres_settings)}
    assert not shown["postgres"].running

    # Started again (no second initdb): same passwords, same data.
    log = postgres_settings.state_dir / "run" / "postgres.log"
    initdb_runs = log.read_text(errors="replace").count("datong initdb")
    platform.up(postgres_settings, services=["postgres"])
    assert log.read_text(errors="replace").count("datong initdb") == initdb_runs == 1
    assert _query(url, "select v from kept") == [(42,)]

"""The embedded PostgreSQL server on 127.0.0.1: the catalogue database in deployment-like
tests, and a department's own database that the data generator fills and ingest reads.

Binaries come from Debian's ``postgresql`` package (``/usr/lib/postgresql/<major>/bin``,
installed by ``scripts/system-deps.sh``); the package's own cluster on 5432 is never used.
PostgreSQL refuses to run as root, so under root both ``initdb`` and ``postgres`` run as
the ``postgres`` OS user through ``setpriv``, which execs in place: the pid file names the
postmaster itself. Passwords live in the state dir's secrets (0600) and are never logged.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from datong.secrets import load_or_create
from datong.services.process import ServiceError, ServiceSpec
from datong.settings import Settings

if TYPE_CHECKING:
    import psycopg

PG_ROOT = Path("/usr/lib/postgresql")
#: The OS user the server runs as when datong runs as root.
OS_USER = "postgres"
#: The database superuser created by initdb.
ADMIN_USER = "postgres"
HOST = "127.0.0.1"
# SIGTERM is a "smart" shutdown that waits for every client to disconnect; SIGINT is the
# "fast" one: clients are disconnected, a shutdown checkpoint is written, the server exits.
STOP_SIGNAL = signal.SIGINT
STOP_GRACE = 30.0
# A Unix socket path may not exceed 107 bytes (sun_path), lock-file suffix included.
_MAX_SOCKET_PATH = 107 - len("/.s.PGSQL.65535.lock")
# Database and role names: plain lower-case identifiers, so they need no quoting anywhere.
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_RESERVED = frozenset({"postgres", "template0", "template1", "public"})


def _major(directory: Path) -> int:
    try:
        return int(directory.name)
    except ValueError:
        return -1


def postgres_bin_dir(data_dir: Path | None = None) -> Path:
    """The newest installed server's bin dir, or the one matching an existing data dir."""
    installed = sorted(
        (
            d.parent
            for d in PG_ROOT.glob("*/bin")
            if (d / "initdb").is_file() and (d / "postgres").is_file()
        ),
        key=_major,
    )
    if not installed:
        raise ServiceError(
            f"the PostgreSQL server is not installed (no {PG_ROOT}/*/bin/initdb); "
            "run `bash scripts/system-deps.sh` (or `make setup`)"
        )
    if data_dir is not None and (data_dir / "PG_VERSION").is_file():
        version = (data_dir / "PG_VERSION").read_text().strip()
        for home in installed:
            if home.name == version:
                return home / "bin"
        raise ServiceError(
            f"{data_dir} was made by PostgreSQL {version}, which is not installed "
            f"(installed: {', '.join(h.name for h in installed)})"
        )
    return installed[-1] / "bin"


def _os_user() -> pwd.struct_passwd | None:
    """The account to run the server as: ``postgres`` under root, else None (ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(OS_USER)
    except KeyError:
        raise ServiceError(
            f"running as root, but there is no {OS_USER!r} OS user to run PostgreSQL as "
            "(the postgresql package creates it: run `bash scripts/system-deps.sh`)"
        ) from None


def _run_as_prefix(account: pwd.struct_passwd | None) -> list[str]:
    """Command prefix that drops root for ``account``; setpriv execs, so pids stay the same."""
    if account is None:
        return []
    setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
    return [
        setpriv,
        f"--reuid={account.pw_uid}",
        f"--regid={account.pw_gid}",
        "--init-groups",
        "--",
    ]


def _private_dir(path: Path, account: pwd.struct_passwd | None) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if account is not None:
        os.chown(path, account.pw_uid, account.pw_gid)
    path.chmod(0o700)


def _check_reachable(path: Path, prefix: list[str]) -> None:
    """Fail clearly when the server's account cannot get to its own directory."""
    if not prefix:
        return
    probe = subprocess.run(
        [*prefix, "test", "-w", str(path), "-a", "-x", str(path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        raise ServiceError(
            f"the {OS_USER!r} OS user cannot reach {path}: every parent directory needs "
            "search (x) permission for it; put the state dir outside private directories"
        )


def admin_password(settings: Settings) -> str:
    """The superuser's password, generated once per state dir."""
    secret = load_or_create(
        settings.state_dir,
        "postgres",
        {"user": ADMIN_USER, "password": secrets.token_urlsafe(32)},
    )
    return secret["password"]


def _url(user: str, password: str, port: int, database: str) -> str:
    from sqlalchemy.engine import URL

    url = URL.create(
        "postgresql+psycopg",
        username=user,
        password=password,
        host=HOST,
        port=port,
        database=database,
    )
    return url.render_as_string(hide_password=False)


def postgres_admin_url(settings: Settings, database: str = "postgres") -> str:
    """SQLAlchemy URL of the superuser (it carries the password: never log it)."""
    return _url(ADMIN_USER, admin_password(settings), settings.postgres_port, database)


def _admin_connect(settings: Settings, dbname: str = "postgres") -> psycopg.Connection:
    import psycopg

    return psycopg.connect(
        host=HOST,
        port=settings.postgres_port,
        user=ADMIN_USER,
        password=admin_password(settings),
        dbname=dbname,
        connect_timeout=5,
        autocommit=True,
    )


def postgres_healthy(settings: Settings) -> bool:
    """True once the server accepts a password login on 127.0.0.1:<port>."""
    import psycopg

    try:
        with _admin_connect(settings) as conn:
            conn.execute("select 1")
    except (psycopg.Error, OSError):
        return False
    return True


def _initdb(
    bin_dir: Path,
    base: Path,
    data_dir: Path,
    log_file: Path,
    password: str,
    account: pwd.struct_passwd | None,
) -> None:
    """Create the cluster: UTF-8, password (SCRAM) authentication for every connection."""
    prefix = _run_as_prefix(account)
    # initdb reads the superuser's password from a file: readable by the server's account
    # only, inside its 0700 directory, and deleted as soon as initdb has read it.
    pwfile = base / "initdb-password"
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    if account is not None:
        os.chown(pwfile, account.pw_uid, account.pw_gid)
    command = [
        *prefix,
        str(bin_dir / "initdb"),
        f"--pgdata={data_dir}",
        f"--username={ADMIN_USER}",
        f"--pwfile={pwfile}",
        "--auth=scram-sha-256",
        "--encoding=UTF8",
        # C.UTF-8: code-point collation (stable across glibc upgrades) with Unicode
        # character classes, which Chinese text in regular expressions needs.
        "--locale=C.UTF-8",
    ]
    try:
        with log_file.open("ab") as log:
            log.write(f"\n---- datong initdb {data_dir}: {time.ctime()} ----\n".encode())
            log.flush()
            result = subprocess.run(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=base,
                timeout=300,
                check=False,
            )
    finally:
        pwfile.unlink(missing_ok=True)
    if result.returncode != 0:
        tail = " | ".join(log_file.read_text(errors="replace").strip().splitlines()[-5:])
        raise ServiceError(f"initdb exited with code {result.returncode} (log: {log_file}): {tail}")


def postgres_spec(settings: Settings) -> ServiceSpec:
    """The server for these settings; creates the cluster under <state>/postgres on first use."""
    run_dir = settings.state_dir / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    base = settings.state_dir / "postgres"
    data_dir = base / "data"
    socket_dir = base / "socket"
    bin_dir = postgres_bin_dir(data_dir)
    account = _os_user()
    prefix = _run_as_prefix(account)
    _private_dir(base, account)
    _check_reachable(base, prefix)
    _private_dir(socket_dir, account)
    if not (data_dir / "PG_VERSION").is_file():
        _initdb(
            bin_dir, base, data_dir, run_dir / "postgres.log", admin_password(settings), account
        )
    # Clients use TCP; the socket lives in our own directory, never the package's
    # /var/run/postgresql. Too long a path for a socket: no Unix socket at all.
    socket_arg = str(socket_dir) if len(str(socket_dir)) <= _MAX_SOCKET_PATH else ""
    return ServiceSpec(
        name="postgres",
        command=[
            *prefix,
            str(bin_dir / "postgres"),
            "-D",
            str(data_dir),
            "-p",
            str(settings.postgres_port),
            "-h",
            HOST,
            "-k",
            socket_arg,
        ],
        run_dir=run_dir,
        ports=[settings.postgres_port],
        health=lambda: postgres_healthy(settings),
        cwd=base,
        start_timeout=60.0,
        stop_grace=STOP_GRACE,
        stop_signal=STOP_SIGNAL,
    )


def ensure_database(settings: Settings, name: str, owner_password: str | None = None) -> str:
    """Create database ``name`` owned by a login role ``name`` (both if missing); its URL.

    The role's password is ``owner_password`` or one generated once and kept in the state
    dir's secrets; it is (re)set on every call, so the returned URL always logs in. Only the
    owner (and the superuser) may connect to the database. The server must be running.
    """
    import psycopg
    from psycopg import errors, sql

    if not _NAME.fullmatch(name) or name in _RESERVED or name.startswith("pg_"):
        raise ValueError(
            f"database name {name!r}: use lower-case letters, digits and _, "
            "not starting with pg_ nor a reserved name"
        )
    if owner_password is None:
        owner_password = load_or_create(
            settings.state_dir,
            f"postgres-role-{name}",
            {"user": name, "password": secrets.token_urlsafe(32)},
        )["password"]
    role = sql.Identifier(name)
    try:
        conn = _admin_connect(settings)
    except psycopg.OperationalError as error:
        raise ServiceError(
            f"PostgreSQL is not reachable on {HOST}:{settings.postgres_port} "
            "(start it with `datong up --with-postgres`)"
        ) from error
    with conn:
        # Only a SCRAM verifier, computed here, goes to the server: the password itself
        # never appears in a statement, so never in a server log either.
        verifier = conn.pgconn.encrypt_password(
            owner_password.encode(), name.encode(), b"scram-sha-256"
        ).decode()
        if conn.execute("select 1 from pg_roles where rolname = %s", (name,)).fetchone() is None:
            # Made meanwhile by a concurrent call: fine, the password is set just below.
            with contextlib.suppress(errors.DuplicateObject):
                conn.execute(sql.SQL("create role {} login").format(role))
        conn.execute(
            sql.SQL("alter role {} with login password {}").format(role, sql.Literal(verifier))
        )
        exists = conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
        if exists is None:
            try:
                conn.execute(
                    sql.SQL("create database {} owner {} encoding 'UTF8'").format(role, role)
                )
            except errors.DuplicateDatabase:
                pass
            else:
                conn.execute(sql.SQL("revoke all on database {} from public").format(role))
    return _url(name, owner_password, settings.postgres_port, name)

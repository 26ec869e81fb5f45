"""The catalogue API server (``python -m catalog serve``) on 127.0.0.1:<catalog_port>.

It migrates its database on start and, every few seconds, escalates overdue reviews,
expires grants and republishes Trino's rules when they changed.
"""

from __future__ import annotations

import sys

from datong.services.process import ServiceSpec, http_ok
from datong.settings import REPO_ROOT, Settings


def catalog_healthy(settings: Settings) -> bool:
    return http_ok(f"{settings.catalog_url}/health")


def catalog_env(settings: Settings) -> dict[str, str]:
    """The server reads the same settings as this process: passed on as DATONG_* variables
    (on top of the inherited environment)."""
    return {
        "DATONG_STATE_DIR": str(settings.state_dir),
        "DATONG_CACHE_DIR": str(settings.cache_dir),
        "DATONG_STORAGE_ROOT": settings.storage_root,
        "DATONG_TRINO_HOST": settings.trino_host,
        "DATONG_TRINO_PORT": str(settings.trino_port),
        "DATONG_TRINO_ADMIN_USER": settings.trino_admin_user,
        "DATONG_CATALOG_DATABASE_URL": settings.catalog_database_url,
        "DATONG_CATALOG_PORT": str(settings.catalog_port),
        "PYTHONPATH": str(REPO_ROOT),
    }


def catalog_spec(settings: Settings) -> ServiceSpec:
    return ServiceSpec(
        name="catalog",
        command=[sys.executable, "-m", "catalog", "serve", "--port", str(settings.catalog_port)],
        run_dir=settings.state_dir / "run",
        ports=[settings.catalog_port],
        health=lambda: catalog_healthy(settings),
        env=catalog_env(settings),
        cwd=REPO_ROOT,
        # Imports and migrations only: a few seconds, more on a busy machine.
        start_timeout=60.0,
    )

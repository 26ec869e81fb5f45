"""Starting and stopping the embedded platform as a whole."""

from __future__ import annotations

from datong import artifacts
from datong.services import process
from datong.services.catalog import catalog_spec
from datong.services.postgres import postgres_spec
from datong.services.process import ServiceError, ServiceSpec, ServiceStatus
from datong.services.seaweedfs import seaweedfs_spec
from datong.services.trino import trino_spec
from datong.settings import Settings
from datong.storage import ensure_bucket


def wanted_services(settings: Settings) -> list[str]:
    """SeaweedFS runs only when the storage root is s3:// on the local endpoint; the
    catalogue API follows Trino, whose rules it publishes.

    PostgreSQL is never started by default: ask for it (``services=[..., "postgres"]``,
    ``datong up --with-postgres``).
    """
    names = []
    if settings.uses_s3 and _is_local_endpoint(settings):
        names.append("seaweedfs")
    names.append("trino")
    names.append("catalog")
    return names


def _is_local_endpoint(settings: Settings) -> bool:
    from urllib.parse import urlparse

    return urlparse(settings.s3_endpoint).hostname in ("127.0.0.1", "localhost")


def spec_for(settings: Settings, name: str) -> ServiceSpec:
    if name == "seaweedfs":
        return seaweedfs_spec(settings)
    if name == "trino":
        return trino_spec(settings)
    if name == "postgres":
        return postgres_spec(settings)
    if name == "catalog":
        return catalog_spec(settings)
    raise ValueError(f"unknown service {name!r}")


def up(settings: Settings, services: list[str] | None = None) -> dict[str, int]:
    """Start the services in order; on any failure stop what this call started."""
    names = services or wanted_services(settings)
    # PostgreSQL comes from the system's packages, not from the downloaded runtime.
    needs_runtime = any(name not in ("postgres", "catalog") for name in names)
    if needs_runtime and not artifacts.is_installed(settings.cache_dir):
        raise ServiceError("the runtime is not installed yet: run `datong setup` (or `make setup`)")
    started: list[ServiceSpec] = []
    pids: dict[str, int] = {}
    try:
        for name in names:
            spec = spec_for(settings, name)
            already = process.status(spec).running
            pids[name] = process.start(spec)
            if not already:
                started.append(spec)
            if name == "seaweedfs":
                ensure_bucket(settings)
    except BaseException:
        for spec in reversed(started):
            process.stop(spec)
        raise
    if "trino" in pids:
        from datong.query import ensure_schemas

        ensure_schemas(settings)
    return pids


def down(settings: Settings) -> list[str]:
    """Stop every service that has a pid file; returns the names of those that were running."""
    stopped = []
    for name in reversed(["postgres", "seaweedfs", "trino", "catalog"]):
        spec = _spec_without_side_effects(settings, name)
        if process.stop(spec):
            stopped.append(name)
    return stopped


def status(settings: Settings) -> list[ServiceStatus]:
    names = ("trino", "catalog", "seaweedfs", "postgres")
    return [process.status(_spec_without_side_effects(settings, n)) for n in names]


def _spec_without_side_effects(settings: Settings, name: str) -> ServiceSpec:
    """A spec good enough to find, probe and stop a service (no rendering, no installs)."""
    from datong.services import postgres
    from datong.services.seaweedfs import seaweedfs_ports
    from datong.services.trino import trino_healthy
    from datong.storage import object_store_healthy

    run_dir = settings.state_dir / "run"
    if name == "catalog":
        from datong.services.catalog import catalog_healthy

        return ServiceSpec(
            "catalog", [], run_dir, [settings.catalog_port], lambda: catalog_healthy(settings)
        )
    if name == "trino":
        return ServiceSpec(
            "trino", [], run_dir, [settings.trino_port], lambda: trino_healthy(settings)
        )
    if name == "postgres":
        return ServiceSpec(
            "postgres",
            [],
            run_dir,
            [settings.postgres_port],
            lambda: postgres.postgres_healthy(settings),
            stop_grace=postgres.STOP_GRACE,
            stop_signal=postgres.STOP_SIGNAL,
        )
    return ServiceSpec(
        "seaweedfs",
        [],
        run_dir,
        seaweedfs_ports(settings),
        lambda: object_store_healthy(settings),
        stop_grace=10.0,
    )

"""Static checks of the distributed deployment (docker/compose.yaml).

No Docker engine runs on the development machines, so nothing here starts a container:
the compose file is read as YAML and checked against the repository (mounted files exist,
Trino reuses the embedded config, every ${ENV:...} placeholder gets a value, no secret is
written in the file). `docker compose config` runs too when the compose CLI is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from datong.services.trino import STATIC_FILES, TEMPLATE_DIR

REPO = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO / "docker"
COMPOSE_FILE = DOCKER_DIR / "compose.yaml"
ENV_EXAMPLE = DOCKER_DIR / ".env.example"

EXPECTED_SERVICES = {
    "seaweedfs-master",
    "seaweedfs-volume",
    "seaweedfs-filer",
    "seaweedfs-s3",
    "postgres",
    "hive-metastore",
    "spark-master",
    "spark-worker-1",
    "spark-worker-2",
    "trino-coordinator",
    "trino-worker-1",
    "trino-worker-2",
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
}

ENV_PLACEHOLDER = re.compile(r"\$\{ENV:([A-Za-z0-9_]+)\}")
# Environment names that hold a secret: their value must come from docker/.env.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|_KEY$|FERNET|TOKEN")
# ${NAME:?message}: required, no default, so a missing secret stops compose.
REQUIRED_INTERPOLATION = re.compile(r"\$\{[A-Z][A-Z0-9_]*:\?[^}]*\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


# -- helpers --------------------------------------------------------------------------------


def split_volume(spec: str) -> tuple[str, str]:
    """Source and target of a short-syntax volume; the source may be ${VAR:?msg}/path."""
    head = ""
    if spec.startswith("${"):
        end = spec.index("}") + 1
        head, spec = spec[:end], spec[end:]
    parts = spec.split(":")
    return head + parts[0], parts[1]


def mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of every bind mount; named volumes are left out."""
    found = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = split_volume(volume)
        elif volume.get("type") == "bind":
            source, target = volume["source"], volume["target"]
        else:
            continue
        if source.startswith((".", "/", "~", "${")):
            found.append((source, target))
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


SECRET_REF = "SECRET_FROM_ENV_FILE"


def masked(value: str) -> str:
    """The value with every required ${NAME:?message} replaced by one token."""
    return REQUIRED_INTERPOLATION.sub(SECRET_REF, value)


def with_defaults(value: str) -> str:
    """The value with every ${NAME:-default} replaced by its default."""
    return re.sub(r"\$\{[A-Za-z0-9_]+:-([^}]*)\}", r"\1", value)


def host_path(source: str) -> Path | None:
    """The repository path a mount source names; None for env-interpolated host paths."""
    if source.startswith("${"):
        return None
    return (DOCKER_DIR / source).resolve()


def mounted_files(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> repository file, with mounted directories expanded file by file."""
    files: dict[str, Path] = {}
    for source, target in mounts(service):
        path = host_path(source)
        if path is None:
            continue
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file():
                    files[f"{target}/{child.relative_to(path).as_posix()}"] = child
        else:
            files[target] = path
    return files


def strings(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """Every string value in the loaded compose file, with its path."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from strings(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from strings(value, f"{where}[{index}]")
    elif isinstance(node, str):
        yield where, node


def properties(path: Path) -> dict[str, str]:
    result = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            result[key.strip()] = value.strip()
    return result


def trino_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in services.items()
        if str(service.get("image", "")).startswith("trinodb/trino:")
    }


# -- the checks -----------------------------------------------------------------------------


def test_compose_file_uses_the_compose_spec(compose: dict[str, Any]) -> None:
    assert "version" not in compose, "the Compose spec has no version key"


def test_every_component_has_its_service(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= EXPECTED_SERVICES, EXPECTED_SERVICES - set(services)


def test_every_referenced_host_path_exists(services: dict[str, dict[str, Any]]) -> None:
    missing = []
    for name, service in services.items():
        sources = [source for source, _ in mounts(service)]
        env_files = service.get("env_file", [])
        sources += (
            [env_files]
            if isinstance(env_files, str)
            else [item if isinstance(item, str) else item["path"] for item in env_files]
        )
        build = service.get("build")
        if isinstance(build, str):
            sources.append(build)
        elif build:
            context = build.get("context", ".")
            sources.append(context)
            sources.append(f"{context}/{build.get('dockerfile', 'Dockerfile')}")
        for source in sources:
            if source.startswith("/"):
                missing.append(f"{name}: {source} is absolute; use a relative or ${{VAR}} path")
                continue
            path = host_path(source)
            if path is not None and not path.exists():
                missing.append(f"{name}: {source}")
    assert not missing, missing


def test_trino_coordinator_mounts_the_embedded_config(
    services: dict[str, dict[str, Any]],
) -> None:
    coordinator = mounted_files(services["trino-coordinator"])
    for name in ("jvm.config", "config.properties"):
        assert coordinator[f"/etc/trino/{name}"] == REPO / "warehouse/trino/etc" / name
    # Every file the embedded platform renders into etc/ comes from the same template.
    for name in STATIC_FILES:
        assert coordinator[f"/etc/trino/{name}"] == TEMPLATE_DIR / name, name
    assert coordinator["/etc/trino/rules.json"] == TEMPLATE_DIR / "rules.base.json"
    assert coordinator["/etc/trino/catalog/lake.properties"] == (
        DOCKER_DIR / "trino/catalog/lake.properties"
    )


def test_trino_workers_share_the_jvm_and_catalog(services: dict[str, dict[str, Any]]) -> None:
    for name in ("trino-worker-1", "trino-worker-2"):
        files = mounted_files(services[name])
        assert files["/etc/trino/jvm.config"] == TEMPLATE_DIR / "jvm.config"
        assert files["/etc/trino/node.properties"] == TEMPLATE_DIR / "node.properties"
        assert files["/etc/trino/config.properties"] == (
            DOCKER_DIR / "trino/worker-config.properties"
        )
        assert files["/etc/trino/catalog/lake.properties"] == (
            DOCKER_DIR / "trino/catalog/lake.properties"
        )


def test_every_trino_env_placeholder_has_a_value(services: dict[str, dict[str, Any]]) -> None:
    nodes = trino_services(services)
    assert {"trino-coordinator", "trino-worker-1", "trino-worker-2"} <= set(nodes)
    for name, service in nodes.items():
        env = environment(service)
        needed = {
            variable
            for path in mounted_files(service).values()
            for variable in ENV_PLACEHOLDER.findall(path.read_text())
        }
        assert needed, f"{name} mounts no Trino config with ${{ENV:...}} placeholders"
        assert needed <= set(env), f"{name} lacks {sorted(needed - set(env))}"


def test_coordinator_environment_fits_the_cluster(services: dict[str, dict[str, Any]]) -> None:
    coordinator = services["trino-coordinator"]
    env = environment(coordinator)
    assert env["TRINO_INCLUDE_COORDINATOR"] == "false"
    assert env["TRINO_HTTP_PORT"] == "8080"
    assert env["TRINO_DISCOVERY_URI"] == "http://trino-coordinator:8080"
    # access-control.properties reads ${ENV:TRINO_ETC_DIR}/rules.json.
    assert f"{env['TRINO_ETC_DIR']}/rules.json" in mounted_files(coordinator)


def test_worker_config_joins_the_coordinator() -> None:
    worker = properties(DOCKER_DIR / "trino/worker-config.properties")
    assert worker["coordinator"] == "false"
    assert worker["http-server.http.port"] == "8080"
    assert worker["discovery.uri"] == "http://trino-coordinator:8080"


def test_cluster_catalog_uses_the_hive_metastore(services: dict[str, dict[str, Any]]) -> None:
    cluster = properties(DOCKER_DIR / "trino/catalog/lake.properties")
    embedded = properties(TEMPLATE_DIR / "catalog/lake-s3.properties")
    assert cluster["connector.name"] == "delta_lake"
    assert cluster["hive.metastore"] == "thrift"
    uri = urlparse(cluster["hive.metastore.uri"])
    assert (uri.scheme, uri.hostname, uri.port) == ("thrift", "hive-metastore", 9083)
    assert uri.hostname in services
    assert cluster["delta.register-table-procedure.enabled"] == "true"
    # Same object store settings as the embedded S3 catalog; only the metastore differs.
    for key, value in embedded.items():
        if key.startswith(("s3.", "fs.", "delta.")):
            assert cluster.get(key) == value, key


def test_no_secret_is_written_in_the_compose_file(compose: dict[str, Any]) -> None:
    offenders = []
    for name, service in compose["services"].items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key) and not REQUIRED_INTERPOLATION.fullmatch(value):
                offenders.append(f"{name}.environment.{key}")
    for where, value in strings(compose):
        # Each required ${NAME:?...} becomes one opaque token; whatever else is left in a
        # password position was written in the file.
        value = masked(value)
        for password in re.findall(r"://[^/\s:@]+:([^@\s]*)@", value):
            if password != SECRET_REF:
                offenders.append(f"{where}: password in URL")
        for password in re.findall(r"(?i)password=(\S*)", value):
            if password != SECRET_REF:
                offenders.append(f"{where}: password option")
        if "change-me" in value:
            offenders.append(f"{where}: placeholder value")
    assert not offenders, offenders


def test_env_example_lists_every_required_variable() -> None:
    example = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            example[key.strip()] = value.strip()
    required = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):\?", COMPOSE_FILE.read_text()))
    assert required <= set(example), sorted(required - set(example))
    for key, value in example.items():
        if SECRET_NAME.search(key):
            assert "change-me" in value, f"{key} in .env.example must be a placeholder"
    assert ".env" in (DOCKER_DIR / ".gitignore").read_text().split()


def test_services_point_at_each_other_by_name(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert set(depends_on) <= set(services), f"{name} depends on an unknown service"
    datong = environment(services["airflow-scheduler"])
    for key in ("DATONG_S3_ENDPOINT", "DATONG_SPARK_MASTER"):
        assert urlparse(datong[key]).hostname in services, key
    assert datong["DATONG_TRINO_HOST"] in services
    assert with_defaults(datong["DATONG_STORAGE_ROOT"]).startswith("s3://")
    assert urlparse(masked(datong["DATONG_CATALOG_DATABASE_URL"])).hostname in services
    airflow_db = environment(services["airflow-scheduler"])["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert urlparse(masked(airflow_db)).hostname in services


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    """`docker compose config` needs only the CLI and its compose plugin, not an engine."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker CLI not installed")
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, timeout=60
    )
    if probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    env_file = tmp_path / "env"
    shutil.copyfile(ENV_EXAMPLE, env_file)
    result = subprocess.run(
        [docker, "compose", "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0 and "daemon" in result.stderr.lower():
        pytest.skip(f"docker compose wants an engine here: {result.stderr.strip()[:200]}")
    assert result.returncode == 0, result.stderr

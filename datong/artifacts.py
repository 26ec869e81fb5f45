"""Runtime artifacts (Spark jars, the Trino server): pinned in artifacts.toml, fetched with
Maven into the cache, verified by sha256, reused offline when present."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PIN_FILE = Path(__file__).with_name("artifacts.toml")
# Pinned so setup does not depend on whichever default plugin version the local Maven picks.
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"


class ArtifactError(RuntimeError):
    """An artifact could not be fetched or failed its checksum."""


@dataclass(frozen=True)
class Artifact:
    """One pinned Maven artifact: ``group:artifact:version[:type[:classifier]]``."""

    coordinates: str
    sha256: str
    size: int

    @property
    def parts(self) -> tuple[str, str, str, str, str]:
        fields = self.coordinates.split(":")
        if len(fields) not in (3, 4, 5):
            raise ArtifactError(f"bad Maven coordinates {self.coordinates!r}")
        group, artifact, version = fields[:3]
        kind = fields[3] if len(fields) > 3 else "jar"
        classifier = fields[4] if len(fields) > 4 else ""
        return group, artifact, version, kind, classifier

    @property
    def file_name(self) -> str:
        _, artifact, version, kind, classifier = self.parts
        suffix = f"-{classifier}" if classifier else ""
        return f"{artifact}-{version}{suffix}.{kind}"

    def path_in(self, repository: Path) -> Path:
        """Where Maven stores this artifact inside a local repository."""
        group, artifact, version, _, _ = self.parts
        return repository.joinpath(*group.split("."), artifact, version, self.file_name)


@dataclass(frozen=True)
class Pins:
    """The parsed pin file."""

    trino: Artifact
    trino_plugins: tuple[str, ...]
    spark_jars: tuple[Artifact, ...]

    @property
    def trino_version(self) -> str:
        return self.trino.parts[2]

    def all(self) -> tuple[Artifact, ...]:
        return (self.trino, *self.spark_jars)


def load_pins(path: Path = PIN_FILE) -> Pins:
    """Read and check the pin file: every entry has coordinates, a sha256 and a size."""
    data = tomllib.loads(path.read_text())

    def artifact(entry: dict[str, object], where: str) -> Artifact:
        try:
            item = Artifact(str(entry["coordinates"]), str(entry["sha256"]), int(entry["size"]))  # type: ignore[call-overload]
        except KeyError as missing:
            raise ArtifactError(f"{path}: {where} lacks {missing}") from None
        if len(item.sha256) != 64 or any(c not in "0123456789abcdef" for c in item.sha256):
            raise ArtifactError(f"{path}: {where} has a malformed sha256")
        _ = item.parts  # validates the coordinates
        return item

    trino = artifact(data["trino"], "[trino]")
    jars = tuple(artifact(e, f"spark_jar {e.get('coordinates')}") for e in data["spark_jar"])
    return Pins(trino, tuple(data["trino"]["plugins"]), jars)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_verified(artifact: Artifact, path: Path) -> bool:
    """True when ``path`` holds exactly the pinned bytes (a stamp avoids rehashing)."""
    if not path.is_file() or path.stat().st_size != artifact.size:
        return False
    stamp = path.with_name(path.name + ".datong-verified")
    stat = path.stat()
    expected = f"{artifact.sha256} {stat.st_size} {stat.st_mtime_ns}"
    if stamp.is_file() and stamp.read_text() == expected:
        return True
    if sha256_of(path) != artifact.sha256:
        return False
    stamp.write_text(expected)
    return True


#: Fetches the given artifacts into a local Maven repository.
Fetcher = Callable[[Sequence[Artifact], Path], None]


def maven_fetch(artifacts: Sequence[Artifact], repository: Path) -> None:
    """Download ``artifacts`` (no transitive dependencies) into ``repository`` with Maven."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ArtifactError("Maven (mvn) is not on PATH; install it (apt-get install maven)")
    dependencies = []
    for item in artifacts:
        group, artifact, version, kind, classifier = item.parts
        classifier_xml = f"<classifier>{classifier}</classifier>" if classifier else ""
        dependencies.append(
            f"<dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
            f"<version>{version}</version><type>{kind}</type>{classifier_xml}"
            "<exclusions><exclusion><groupId>*</groupId><artifactId>*</artifactId>"
            "</exclusion></exclusions></dependency>"
        )
    pom = (
        "<project><modelVersion>4.0.0</modelVersion>"
        "<groupId>datong.setup</groupId><artifactId>runtime</artifactId><version>0</version>"
        f"<packaging>pom</packaging><dependencies>{''.join(dependencies)}</dependencies></project>"
    )
    with tempfile.TemporaryDirectory(prefix="datong-mvn-") as work:
        Path(work, "pom.xml").write_text(pom)
        command = [
            mvn,
            "-B",
            "-q",
            f"-Dmaven.repo.local={repository}",
            f"{DEPENDENCY_PLUGIN}:resolve",
        ]
        result = subprocess.run(command, cwd=work, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise ArtifactError(f"Maven could not fetch the runtime artifacts:\n{tail}")


def ensure_artifacts(
    artifacts: Sequence[Artifact], repository: Path, fetch: Fetcher = maven_fetch
) -> list[Path]:
    """Make every artifact present and verified; refetch any missing or corrupt one once."""
    missing = [a for a in artifacts if not is_verified(a, a.path_in(repository))]
    for attempt in (1, 2):
        if not missing:
            break
        for item in missing:
            _discard(item.path_in(repository))
        log.info("fetching %d artifact(s), attempt %d", len(missing), attempt)
        fetch(missing, repository)
        missing = [a for a in missing if not is_verified(a, a.path_in(repository))]
    if missing:
        names = ", ".join(a.coordinates for a in missing)
        raise ArtifactError(f"checksum mismatch after refetch: {names}")
    return [a.path_in(repository) for a in artifacts]


def _discard(path: Path) -> None:
    """Remove a bad file and Maven's bookkeeping so Maven downloads it again."""
    for candidate in (
        path,
        path.with_name(path.name + ".datong-verified"),
        path.with_name(path.name + ".sha1"),
        path.with_name(path.name + ".lastUpdated"),
        path.parent / "_remote.repositories",
    ):
        candidate.unlink(missing_ok=True)


def install_trino(tarball: Path, pins: Pins, cache_dir: Path) -> Path:
    """Unpack the Trino server once (only the pinned plugins); return its home directory."""
    home = cache_dir / f"trino-server-{pins.trino_version}"
    marker = home / ".datong-installed"
    expected = json.dumps({"sha256": pins.trino.sha256, "plugins": sorted(pins.trino_plugins)})
    if marker.is_file() and marker.read_text() == expected:
        return home
    staging = cache_dir / f".trino-staging-{pins.trino_version}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    prefix = f"trino-server-{pins.trino_version}"
    # The tarball hard-links jars shared between plugins, so unpack it whole (GNU tar, one
    # streaming pass) and then drop the plugins datong does not use.
    result = subprocess.run(
        ["tar", "-xzf", str(tarball), "-C", str(staging)], capture_output=True, text=True
    )
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise ArtifactError(f"could not unpack {tarball}: {result.stderr.strip()[-500:]}")
    for plugin in (staging / prefix / "plugin").iterdir():
        if plugin.name not in pins.trino_plugins:
            shutil.rmtree(plugin)
    shutil.rmtree(home, ignore_errors=True)
    (staging / prefix).rename(home)
    shutil.rmtree(staging, ignore_errors=True)
    marker.write_text(expected)
    return home


@dataclass(frozen=True)
class Runtime:
    """Paths of the installed runtime."""

    trino_home: Path
    spark_jars: tuple[Path, ...]


def runtime_paths(cache_dir: Path, pins: Pins | None = None) -> Runtime:
    """Where setup puts the runtime; does not check that it is there."""
    pins = pins or load_pins()
    repository = cache_dir / "m2"
    return Runtime(
        trino_home=cache_dir / f"trino-server-{pins.trino_version}",
        spark_jars=tuple(a.path_in(repository) for a in pins.spark_jars),
    )


def is_installed(cache_dir: Path, pins: Pins | None = None) -> bool:
    """Quick check (sizes and markers, no hashing) that setup has run."""
    pins = pins or load_pins()
    runtime = runtime_paths(cache_dir, pins)
    jars_ok = all(
        path.is_file() and path.stat().st_size == a.size
        for a, path in zip(pins.spark_jars, runtime.spark_jars, strict=True)
    )
    return jars_ok and (runtime.trino_home / ".datong-installed").is_file()


def setup(cache_dir: Path, fetch: Fetcher = maven_fetch) -> Runtime:
    """Fetch, verify and install every runtime artifact; idempotent and offline when cached."""
    pins = load_pins()
    repository = cache_dir / "m2"
    repository.mkdir(parents=True, exist_ok=True)
    paths = ensure_artifacts(pins.all(), repository, fetch)
    trino_home = install_trino(paths[0], pins, cache_dir)
    return Runtime(trino_home=trino_home, spark_jars=tuple(paths[1:]))

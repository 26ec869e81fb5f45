"""Pinned runtime artifacts: the pin file, checksum verification, refetch of corrupt files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from datong import artifacts
from datong.artifacts import Artifact, ArtifactError, ensure_artifacts, load_pins


def test_pin_file_is_complete():
    pins = load_pins()
    assert pins.trino.coordinates == "io.trino:trino-server:476:tar.gz"
    assert "delta-lake" in pins.trino_plugins
    coordinates = [a.coordinates for a in pins.spark_jars]
    assert len(coordinates) == len(set(coordinates))
    for required in (
        "io.delta:delta-spark_4.1_2.13:4.4.0",
        "io.delta:delta-storage:4.4.0",
        "org.apache.hadoop:hadoop-aws:3.4.2",
    ):
        assert required in coordinates
    assert any(c.startswith("software.amazon.awssdk:bundle:") for c in coordinates)


def test_no_pinned_jar_duplicates_what_pyspark_ships():
    import pyspark

    shipped = {
        jar.name.rsplit("-", 1)[0] for jar in (Path(pyspark.__file__).parent / "jars").glob("*.jar")
    }
    for artifact in load_pins().spark_jars:
        assert artifact.parts[1] not in shipped, (
            f"{artifact.coordinates} is already in pyspark/jars"
        )


def test_hadoop_aws_matches_sparks_hadoop():
    import pyspark

    jars = (Path(pyspark.__file__).parent / "jars").glob("hadoop-client-api-*.jar")
    spark_hadoop = next(jars).name.removeprefix("hadoop-client-api-").removesuffix(".jar")
    hadoop_aws = next(a for a in load_pins().spark_jars if a.parts[1] == "hadoop-aws")
    assert hadoop_aws.parts[2] == spark_hadoop


def test_malformed_pin_file_is_refused(tmp_path):
    pin_file = tmp_path / "artifacts.toml"
    pin_file.write_text(
        '[trino]\ncoordinates = "io.trino:trino-server:476:tar.gz"\nsha256 = "abc"\nsize = 1\n'
        'plugins = []\n[[spark_jar]]\ncoordinates = "a:b:1"\nsha256 = "'
        + "0" * 64
        + '"\nsize = 1\n'
    )
    with pytest.raises(ArtifactError, match="malformed sha256"):
        load_pins(pin_file)


def test_maven_repository_layout():
    artifact = Artifact("io.trino:trino-server:476:tar.gz", "0" * 64, 1)
    assert artifact.path_in(Path("/m2")) == Path(
        "/m2/io/trino/trino-server/476/trino-server-476.tar.gz"
    )
    assert Artifact("g.h:a:1.0", "0" * 64, 1).file_name == "a-1.0.jar"


class FakeRepository:
    """A stand-in for the remote repository: serves bytes, counts what was asked."""

    def __init__(self, content: dict[str, bytes]):
        self.content = content
        self.requests: list[str] = []

    def fetch(self, wanted, repository: Path) -> None:
        for artifact in wanted:
            self.requests.append(artifact.coordinates)
            target = artifact.path_in(repository)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.content[artifact.coordinates])


def pinned(coordinates: str, data: bytes) -> Artifact:
    return Artifact(coordinates, hashlib.sha256(data).hexdigest(), len(data))


def test_fetches_missing_and_then_reuses_without_network(tmp_path):
    data = b"jar bytes" * 100
    artifact = pinned("org.example:lib:1.0", data)
    remote = FakeRepository({artifact.coordinates: data})
    [path] = ensure_artifacts([artifact], tmp_path, remote.fetch)
    assert path.read_bytes() == data
    assert remote.requests == ["org.example:lib:1.0"]
    ensure_artifacts([artifact], tmp_path, remote.fetch)
    assert remote.requests == ["org.example:lib:1.0"]  # cached: no second fetch


def test_corrupt_or_partial_file_is_detected_and_fetched_again(tmp_path):
    data = b"0123456789" * 50
    artifact = pinned("org.example:lib:2.0", data)
    remote = FakeRepository({artifact.coordinates: data})
    ensure_artifacts([artifact], tmp_path, remote.fetch)
    path = artifact.path_in(tmp_path)
    path.write_bytes(data[:-1] + b"X")  # same size, one byte flipped
    ensure_artifacts([artifact], tmp_path, remote.fetch)
    assert path.read_bytes() == data
    path.write_bytes(data[:100])  # a partial download
    ensure_artifacts([artifact], tmp_path, remote.fetch)
    assert path.read_bytes() == data
    assert len(remote.requests) == 3


def test_repository_serving_wrong_bytes_fails_loudly(tmp_path):
    artifact = pinned("org.example:lib:3.0", b"expected")
    remote = FakeRepository({artifact.coordinates: b"tampered"})
    with pytest.raises(ArtifactError, match="checksum mismatch after refetch: org.example:lib:3.0"):
        ensure_artifacts([artifact], tmp_path, remote.fetch)
    assert len(remote.requests) == 2


def test_installed_runtime_is_verified():
    """After `datong setup` (which `make test` runs first) every pinned file checks out."""
    from datong.settings import Settings

    settings = Settings()
    if not artifacts.is_installed(settings.cache_dir):
        pytest.fail("runtime not installed: run `datong setup` before the tests")
    pins = load_pins()
    repository = settings.cache_dir / "m2"
    for artifact in pins.all():
        assert artifacts.is_verified(artifact, artifact.path_in(repository)), artifact.coordinates

"""Settings: embedded defaults, environment and TOML overrides, refusal of bad values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from datong.settings import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for key in list(__import__("os").environ):
        if key.startswith("DATONG_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_defaults_are_the_embedded_single_machine_platform(tmp_path):
    settings = Settings(state_dir=tmp_path / "state")
    assert settings.storage_root == f"file://{tmp_path}/state/lake"
    assert settings.storage_scheme == "file" and not settings.uses_s3
    assert settings.local_lake_path == tmp_path / "state" / "lake"
    assert settings.spark_master == "local[*]"
    assert settings.trino_url == "https://127.0.0.1:8090"
    assert settings.catalog_database_url == f"sqlite:///{tmp_path}/state/catalog.db"


def test_environment_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("DATONG_STATE_DIR", str(tmp_path / "s"))
    monkeypatch.setenv("DATONG_STORAGE_ROOT", "s3://lakehouse/prod/")
    monkeypatch.setenv("DATONG_SPARK_MASTER", "spark://10.0.0.5:7077")
    monkeypatch.setenv("DATONG_TRINO_PORT", "8443")
    settings = Settings()
    assert settings.storage_root == "s3://lakehouse/prod"
    assert settings.uses_s3 and settings.s3_bucket == "lakehouse"
    assert settings.spark_master == "spark://10.0.0.5:7077"
    assert settings.trino_port == 8443


def test_toml_file_is_read_and_environment_wins(monkeypatch, tmp_path):
    config = tmp_path / "site.toml"
    config.write_text('storage_root = "s3://from-file/x"\ntrino_port = 9001\n')
    monkeypatch.setenv("DATONG_CONFIG", str(config))
    monkeypatch.setenv("DATONG_TRINO_PORT", "9002")
    settings = Settings(state_dir=tmp_path)
    assert settings.storage_root == "s3://from-file/x"
    assert settings.trino_port == 9002


def test_local_datong_toml_is_picked_up(tmp_path):
    (tmp_path / "datong.toml").write_text('spark_master = "local[1]"\n')
    assert Settings(state_dir=tmp_path).spark_master == "local[1]"


@pytest.mark.parametrize(
    ("root", "complaint"),
    [("hdfs://nn/lake", "file:// or s3://"), ("s3:///nobucket", "names no bucket")],
)
def test_bad_storage_root_is_refused(tmp_path, root, complaint):
    with pytest.raises(ValidationError, match=complaint):
        Settings(state_dir=tmp_path, storage_root=root)


def test_unknown_setting_is_refused(tmp_path):
    with pytest.raises(ValidationError, match="trino_prot"):
        Settings(state_dir=tmp_path, trino_prot=1)


def test_describe_never_shows_secrets(tmp_path):
    settings = Settings(
        state_dir=tmp_path,
        s3_access_key="AKIAEXAMPLE",
        s3_secret_key="very-secret-value",
        catalog_database_url="postgresql+psycopg://datong:hunter2@127.0.0.1/catalog",
    )
    text = repr(settings.describe()) + repr(settings)
    assert "very-secret-value" not in text
    assert "hunter2" not in text


def test_generated_s3_credentials_are_private_and_stable(tmp_path):
    first = Settings(state_dir=tmp_path).s3_credentials
    second = Settings(state_dir=tmp_path).s3_credentials
    assert first == second
    assert len(first[1]) >= 30
    secret_file = tmp_path / "secrets" / "s3.json"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    assert Settings(state_dir=tmp_path / "other").s3_credentials != first

"""Platform settings: where data lives, which engines to talk to, and as whom.

One object, read from environment variables (``DATONG_*``) and an optional TOML file
(``DATONG_CONFIG``, else ``./datong.toml`` when present). Defaults describe the embedded
single-machine platform: everything on 127.0.0.1, state under ``./.state``.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

REPO_ROOT = Path(__file__).resolve().parent.parent

#: The schemas (Trino) / databases (Spark) of the lake, in data-flow order.
LAKE_SCHEMAS: tuple[str, ...] = (
    "bronze",
    "quarantine",
    "ops",
    "silver",
    "population",
    "legal_person",
    "geo",
    "credit",
    "license",
    "materials",
    "quality",
    "open",
)


def _config_file() -> Path | None:
    explicit = os.environ.get("DATONG_CONFIG")
    if explicit:
        return Path(explicit)
    local = Path("datong.toml")
    return local if local.is_file() else None


class Settings(BaseSettings):
    """Everything a datong process needs to know about its platform."""

    model_config = SettingsConfigDict(env_prefix="DATONG_", extra="forbid")

    state_dir: Path = Field(
        default=REPO_ROOT / ".state",
        description="Pid files, logs, rendered service configs, local lake and secrets.",
    )
    cache_dir: Path = Field(
        default=Path.home() / ".cache" / "datong",
        description="Downloaded runtime artifacts (jars, Trino); shared across checkouts.",
    )
    storage_root: str = Field(
        default="",
        description="file:///abs/path or s3://bucket/prefix; empty means file://<state_dir>/lake.",
    )

    spark_master: str = "local[*]"
    # Where executors reach the driver: loopback for the embedded platform, the driver
    # machine's cluster address when spark_master is a cluster URL.
    spark_driver_host: str = "127.0.0.1"
    # 2 GiB is enough for the demo and tests on small data; raise it for a 1M-person run.
    spark_driver_memory: str = "2g"
    # Few shuffle partitions: local data is small and 200 tiny tasks cost more than they save.
    spark_shuffle_partitions: int = 4
    # Delta rebuilds a table's state (its file list) with this many tasks, at every snapshot
    # load and after every commit. datong's logs hold tens to thousands of files: two tasks
    # do it in one wave, where 16 took 2–4 s after each MERGE at 1M persons.
    delta_snapshot_partitions: int = 2
    java17_home: Path | None = Field(
        default=None, description="JDK 17 for Spark; found from the machine when unset."
    )

    trino_host: str = "127.0.0.1"
    # Trino's HTTPS port: clients authenticate with a password, so there is no plain HTTP one.
    trino_port: int = 8090
    trino_admin_user: str = "datong"
    trino_certificate: Path | None = Field(
        default=None,
        description="PEM certificate clients verify Trino's HTTPS against; empty means the "
        "one generated in <state_dir>/tls for the embedded server.",
    )
    trino_audit_url: str = Field(
        default="",
        description="Where Trino's event listener POSTs finished queries; empty means the "
        "catalogue's /audit/trino-events on 127.0.0.1:<catalog_port>.",
    )
    # The catalogue API (`python -m catalog serve`), started by `datong up` after Trino.
    catalog_port: int = 8095

    s3_endpoint: str = "http://127.0.0.1:8333"
    s3_region: str = "us-east-1"
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    seaweed_master_port: int = 9333
    seaweed_volume_port: int = 8088
    seaweed_filer_port: int = 8888
    # SeaweedFS also listens on a gRPC port per server; pinned so nothing picks a random one.
    seaweed_master_grpc_port: int = 19333
    seaweed_volume_grpc_port: int = 18088
    seaweed_filer_grpc_port: int = 18888
    seaweed_s3_grpc_port: int = 18333

    # May carry a password (PostgreSQL in deployment): kept out of repr and logs.
    catalog_database_url: str = Field(default="", repr=False)
    # The embedded PostgreSQL (`datong up --with-postgres`): not 5432, which a distribution's
    # own cluster may hold; listens on 127.0.0.1 only.
    postgres_port: int = 5433

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config = _config_file()
        if config is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config))
        return tuple(sources)

    @field_validator("storage_root")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if value and urlparse(value).scheme not in ("file", "s3"):
            raise ValueError(f"storage_root must start with file:// or s3://, got {value!r}")
        if value.startswith("s3://") and not urlparse(value).netloc:
            raise ValueError(f"storage_root {value!r} names no bucket")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        self.state_dir = self.state_dir.expanduser().resolve()
        self.cache_dir = self.cache_dir.expanduser().resolve()
        if not self.storage_root:
            self.storage_root = (self.state_dir / "lake").as_uri()
        if not self.catalog_database_url:
            self.catalog_database_url = f"sqlite:///{self.state_dir / 'catalog.db'}"
        return self

    # -- derived values -------------------------------------------------------------

    @property
    def storage_scheme(self) -> str:
        return urlparse(self.storage_root).scheme

    @property
    def uses_s3(self) -> bool:
        return self.storage_scheme == "s3"

    @property
    def s3_bucket(self) -> str:
        return urlparse(self.storage_root).netloc

    @property
    def local_lake_path(self) -> Path:
        """The lake directory when the root is file://."""
        return Path(urlparse(self.storage_root).path)

    @property
    def trino_url(self) -> str:
        return f"https://{self.trino_host}:{self.trino_port}"

    @property
    def trino_certificate_path(self) -> Path:
        from datong.tls import tls_files

        return self.trino_certificate or tls_files(self.state_dir).certificate

    @property
    def audit_url(self) -> str:
        return self.trino_audit_url or f"http://127.0.0.1:{self.catalog_port}/audit/trino-events"

    @property
    def catalog_url(self) -> str:
        return f"http://127.0.0.1:{self.catalog_port}"

    @property
    def s3_port(self) -> int:
        return urlparse(self.s3_endpoint).port or 80

    @cached_property
    def s3_credentials(self) -> tuple[str, str]:
        """Access and secret key: configured ones, or generated once per state dir."""
        if self.s3_access_key and self.s3_secret_key:
            return self.s3_access_key.get_secret_value(), self.s3_secret_key.get_secret_value()
        from datong.secrets import local_s3_credentials

        return local_s3_credentials(self.state_dir)

    def describe(self) -> dict[str, Any]:
        """Settings safe to print: secrets are never included."""
        return {
            "state_dir": str(self.state_dir),
            "cache_dir": str(self.cache_dir),
            "storage_root": self.storage_root,
            "spark_master": self.spark_master,
            "trino_url": self.trino_url,
            "s3_endpoint": self.s3_endpoint,
            "catalog_database_url": _hide_password(self.catalog_database_url),
            "catalog_url": self.catalog_url,
        }


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and config file, with explicit overrides on top."""
    return Settings(**overrides)


def _hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)

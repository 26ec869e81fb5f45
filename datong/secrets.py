"""Locally generated secrets: made on first use, kept in the state dir (mode 0600), not in git."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path


def _secret_file(state_dir: Path, name: str) -> Path:
    directory = state_dir / "secrets"
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    return directory / f"{name}.json"


def load_or_create(state_dir: Path, name: str, make: dict[str, str]) -> dict[str, str]:
    """Return the secret ``name``, writing ``make`` atomically if it does not exist yet."""
    path = _secret_file(state_dir, name)
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(make, handle)
        os.replace(tmp, path)
    data: dict[str, str] = json.loads(path.read_text())
    return data


def local_s3_credentials(state_dir: Path) -> tuple[str, str]:
    """Access and secret key of the embedded SeaweedFS admin identity."""
    data = load_or_create(
        state_dir,
        "s3",
        {"access_key": "datong-" + secrets.token_hex(6), "secret_key": secrets.token_urlsafe(30)},
    )
    return data["access_key"], data["secret_key"]


def trino_admin_password(state_dir: Path) -> str:
    """Password of Trino's admin user (settings.trino_admin_user); password.db has its hash."""
    return load_or_create(state_dir, "trino-admin", {"password": secrets.token_urlsafe(24)})[
        "password"
    ]


def trino_shared_secret(state_dir: Path) -> str:
    """Key that signs requests between Trino nodes (internal-communication.shared-secret)."""
    return load_or_create(state_dir, "trino-internal", {"secret": secrets.token_urlsafe(48)})[
        "secret"
    ]


def audit_token(state_dir: Path) -> str:
    """Token Trino's event listener sends to the catalogue's audit endpoint (a header)."""
    return load_or_create(state_dir, "audit", {"token": secrets.token_urlsafe(32)})["token"]

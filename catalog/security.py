"""Secrets of the catalogue: bearer tokens (stored as SHA-256), bcrypt password hashes, and
the shared secret Trino's event listener sends with every query event."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

import bcrypt

from datong import secrets as datong_secrets
from datong.secrets import load_or_create

#: bcrypt cost: Trino's file authenticator accepts cost 8 and above; 10 keeps a login
#: (every Trino query re-checks the password, cached) cheap on a small machine.
BCRYPT_COST = 10
TOKEN_PREFIX = "dt_"


def new_token() -> str:
    """A fresh bearer token (shown once; only its hash is kept)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def hash_password(password: str) -> str:
    """The bcrypt hash (``$2b$10$…``) of ``password``, usable by Trino's password file too."""
    if len(password.encode("utf-8")) > 72:
        raise ValueError("a password is at most 72 bytes (bcrypt's limit)")
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(BCRYPT_COST)).decode("ascii")


def check_password(password: str, hashed: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode("utf-8"), hashed.encode("ascii"))
    except ValueError:
        return False


def audit_token(state_dir: Path) -> str:
    """The secret Trino's HTTP event listener sends as ``X-Datong-Audit-Token``."""
    return datong_secrets.audit_token(state_dir)


def same_secret(given: str | None, expected: str) -> bool:
    """Constant-time comparison, so the token cannot be guessed byte by byte."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def admin_secret(state_dir: Path) -> dict[str, str]:
    """The bootstrap platform admin's name, password and first token (0600, never logged)."""
    return load_or_create(
        state_dir,
        "catalog-admin",
        {"user": "admin", "password": secrets.token_urlsafe(18), "token": new_token()},
    )

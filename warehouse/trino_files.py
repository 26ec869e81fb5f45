"""Trino's account files: ``password.db`` (``user:bcrypt-hash``) and ``group.txt``.

Both are read by the file authenticator and group provider of Trino's
password-authenticators plugin, reread every ``file.refresh-period``. Each write goes
through a temporary file in the same directory and ``os.replace``, so Trino reads either
the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

# Trino's bcrypt library accepts the $2a$, $2b$, $2x$ and $2y$ forms (verified against
# Trino 476 in tests/integration/test_trino_access.py); cost below 8 is refused by Trino.
BCRYPT = re.compile(r"\$2[abxy]\$(\d\d)\$[./A-Za-z0-9]{53}")
MIN_COST = 8
#: The admin's hash cost: Trino checks it on every new connection, so keep it moderate.
ADMIN_COST = 10


def check_bcrypt(value: str, what: str) -> None:
    match = BCRYPT.fullmatch(value)
    if match is None:
        raise ValueError(f"{what}: password_bcrypt is not a bcrypt hash ($2b$NN$...)")
    if int(match.group(1)) < MIN_COST:
        cost = match.group(1)
        raise ValueError(f"{what}: bcrypt cost {cost} is below Trino's minimum {MIN_COST}")


def write_atomically(path: Path, text: str, mode: int = 0o600) -> None:
    """Replace ``path`` with ``text`` in one step (temp file in the same dir + os.replace)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_password_db(etc_dir: Path) -> dict[str, str]:
    path = etc_dir / "password.db"
    if not path.is_file():
        return {}
    entries = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        user, sep, hashed = line.strip().partition(":")
        if sep and user:
            entries[user] = hashed
    return entries


def existing_hash(etc_dir: Path, user: str) -> str | None:
    return read_password_db(etc_dir).get(user)


def write_password_db(etc_dir: Path, hashes: Mapping[str, str]) -> None:
    """password.db with one ``user:hash`` line per user, in the given order."""
    for user, hashed in hashes.items():
        check_bcrypt(hashed, f"user {user!r}")
    write_atomically(
        etc_dir / "password.db", "".join(f"{user}:{hashed}\n" for user, hashed in hashes.items())
    )


def write_group_file(etc_dir: Path, members: Mapping[str, Sequence[str]]) -> None:
    """group.txt: ``group:user1,user2`` per department that has users."""
    lines = [
        f"{group}:{','.join(sorted(set(users)))}\n"
        for group, users in sorted(members.items())
        if users
    ]
    write_atomically(etc_dir / "group.txt", "".join(lines), mode=0o644)


def ensure_password(etc_dir: Path, user: str, password: str) -> None:
    """Keep ``user``'s line if it matches ``password``; else (re)write it, keeping the rest."""
    import bcrypt

    entries = read_password_db(etc_dir)
    current = entries.get(user)
    if current is not None and bcrypt.checkpw(password.encode(), current.encode()):
        return
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(ADMIN_COST)).decode()
    etc_dir.mkdir(parents=True, exist_ok=True)
    write_password_db(etc_dir, {user: hashed} | {u: h for u, h in entries.items() if u != user})

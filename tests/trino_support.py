"""Trino users of the test platforms, and a stand-in for the catalogue's audit endpoint.

Imported once as ``tests.trino_support`` by conftest.py and the tests alike, so the random
password below has one value per run.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from datong.services.process import free_port
from datong.settings import Settings

#: Authenticated users without any grant (tests check that Trino denies them), all with
#: this one password; the catalogue's users are published the same way (warehouse.access).
UNGRANTED_USERS = ("analyst", "analyst_without_grant", "someone_ungranted", "nobody")
UNGRANTED_PASSWORD = "ungranted-" + secrets.token_urlsafe(12)


def trino_etc(settings: Settings) -> Path:
    from datong.services.trino import trino_etc_dir

    return trino_etc_dir(settings)


def publish_test_access(
    settings: Settings,
    grants: Iterable[Any] = (),
    principals: Iterable[Any] = (),
    table_columns: dict[str, list[str]] | None = None,
    now: dt.datetime | None = None,
) -> None:
    """Publish these grants and principals, plus the ungranted users every test relies on."""
    import bcrypt

    from warehouse.access import Principal, publish

    hashed = bcrypt.hashpw(UNGRANTED_PASSWORD.encode(), bcrypt.gensalt(8)).decode()
    everyone = [Principal(user, hashed) for user in UNGRANTED_USERS] + list(principals)
    publish(
        trino_etc(settings),
        grants=grants,
        principals=everyone,
        admin_user=settings.trino_admin_user,
        now=now or dt.datetime.now(dt.UTC),
        table_columns=table_columns or {},
    )


def wait_until_authenticated(settings: Settings, user: str, password: str) -> None:
    """Poll (up to ~15 s) until Trino has reread password.db and accepts this user."""
    import time

    from datong import query

    deadline = time.monotonic() + 15
    while True:
        try:
            query.run(settings, "SELECT 1", user=user, password=password)
            return
        except query.AuthenticationError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


class AuditReceiver:
    """A stdlib HTTP server standing in for the catalogue's audit endpoint."""

    def __init__(self) -> None:
        self.token = "audit-" + secrets.token_urlsafe(16)
        self.events: list[dict[str, Any]] = []
        self.rejected = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("X-Datong-Audit-Token") != receiver.token:
                    receiver.rejected += 1
                    self.send_response(403)
                else:
                    receiver.events.append({"path": self.path, "event": json.loads(body or b"{}")})
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/audit/trino-events"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

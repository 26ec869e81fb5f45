"""The one service layer both front ends (the REST API and the CLI) use: the database for a
settings object, sessions, and what follows a change of grants."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from catalog import db, grants, lake, workflow
from datong.settings import Settings

log = logging.getLogger(__name__)
#: How often the server rereads the quality gates (lake.quality.gate) between publications.
GATE_EVERY_S = 60.0


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Catalog:
    """The catalogue of one platform: its database and its Trino."""

    def __init__(self, settings: Settings, *, publish: bool = True):
        self.settings = settings
        self.url = settings.catalog_database_url
        # Tests of the workflow alone turn publication off: Trino's files are not theirs.
        self.publish = publish
        self._last_error: str | None = None
        self._gates: tuple[float, dict[str, str]] | None = None
        db.migrate(self.url)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with db.session_scope(self.url) as session:
            yield session

    def maintain(self, now: dt.datetime | None = None) -> dict[str, object]:
        """Escalate overdue reviews, expire grants, and republish if anything changed."""
        moment = now or now_utc()
        with self.session() as session:
            result: dict[str, object] = dict(workflow.maintain(session, moment))
        result["published"] = self.publish_if_changed(moment)
        return result

    def closed_gates(self, refresh: bool = False) -> dict[str, str]:
        """Closed quality gates, read through Trino at most once a minute (each read is a
        query in the audit; a gate closes once per quality run, not every few seconds)."""
        if refresh or self._gates is None or time.monotonic() - self._gates[0] > GATE_EVERY_S:
            self._gates = (time.monotonic(), lake.closed_gates(self.settings))
        return self._gates[1]

    def publish_if_changed(self, now: dt.datetime | None = None) -> bool:
        """Publish the grants to Trino if they changed; a failure is logged and retried later."""
        if not self.publish:
            return False
        try:
            with self.session() as session:
                published = grants.publish_if_changed(
                    self.settings, session, now or now_utc(), blocked=self.closed_gates()
                )
        except Exception as error:  # the next maintenance pass tries again
            message = f"{type(error).__name__}: {error}"
            if message != self._last_error:  # once per cause, not every few seconds
                log.warning("publishing the grants to Trino failed: %s", message)
            self._last_error = message
            return False
        self._last_error = None
        return published

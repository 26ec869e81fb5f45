"""Grants enforced by a real Trino, and every query audited through its event listener.

Spark writes a small Delta table of persons (ID number, name, division code); the grants
are published with ``warehouse.access.publish`` exactly as the catalogue publishes them,
and a department's user queries over HTTPS with its password. Rules are reread by Trino
every second: each check polls (up to ~15 s) for the new state, no timing is asserted.
The storage root does not matter to access control, so only the file:// platform runs.
"""

from __future__ import annotations

import datetime as dt
import http.client
import secrets
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import bcrypt
import pytest

from datong import query
from datong.settings import Settings
from datong.storage import spark_location
from tests.trino_support import (
    UNGRANTED_PASSWORD,
    AuditReceiver,
    publish_test_access,
    wait_until_authenticated,
)
from warehouse.access import Principal, TableGrant

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("platform_settings", ["file"], indirect=True),
]

TABLE = "bronze.access_person"
COLUMNS = {TABLE: ["id_number", "name", "division_code"]}
ROWS = [
    ("420102199001011234", "张伟", "420102"),
    ("420106198507153321", "王芳", "420106"),
    ("420102200012319876", "李娜", "420102"),
]
# The ID number's first six digits (the issuing division) and last four, the rest hidden.
ID_MASK = "concat(substr(id_number, 1, 6), '********', substr(id_number, 15, 4))"
USER, GROUP = "wang_civil", "civil_affairs"
PASSWORD = "pw-" + secrets.token_urlsafe(12)
SELECT = f"SELECT id_number, name FROM lake.{TABLE} ORDER BY id_number"


@pytest.fixture(scope="module")
def settings(spark, platform_settings: Settings) -> Iterator[Settings]:
    """The platform with the persons table registered; the grants are removed afterwards."""
    location = spark_location(platform_settings, TABLE)
    frame = spark.createDataFrame(ROWS, "id_number string, name string, division_code string")
    frame.write.format("delta").mode("overwrite").save(location)
    query.register_table(platform_settings, TABLE)
    try:
        yield platform_settings
    finally:
        publish_test_access(platform_settings)


def grant_to_civil_affairs(settings: Settings, *grants: TableGrant, now: dt.datetime | None = None):
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(8)).decode()
    publish_test_access(
        settings,
        grants=grants,
        principals=[Principal(USER, hashed, (GROUP,))],
        table_columns=COLUMNS,
        now=now,
    )
    wait_until_authenticated(settings, USER, PASSWORD)


def as_user(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    return query.run(settings, sql, user=USER, password=PASSWORD).rows


def eventually(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    """``check()``'s first truthy result, retried until Trino has reread its files."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
            failure: object = result
        except query.QueryError as error:
            failure = error
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still {failure!r} after {timeout:.0f} s")
        time.sleep(0.3)


def denied(settings: Settings, sql: str) -> bool:
    try:
        as_user(settings, sql)
    except query.QueryError as error:
        # Not "Access Denied: Invalid credentials" (a 401): the user is in, the data is not.
        return "Access Denied: Cannot" in str(error)
    return False


def full_grant(**extra: Any) -> TableGrant:
    return TableGrant(
        "g-person",
        GROUP,
        TABLE,
        ("id_number", "name"),
        masks={"id_number": ID_MASK},
        row_filter="division_code = '420102'",
        **extra,
    )


def test_an_authenticated_user_without_a_grant_is_denied(settings):
    grant_to_civil_affairs(settings)
    with pytest.raises(query.QueryError, match="Access Denied: Cannot access catalog lake"):
        as_user(settings, SELECT)


def test_a_wrong_password_is_refused_before_any_query(settings):
    with pytest.raises(query.AuthenticationError, match="error 401"):
        query.run(settings, "SELECT 1", user="analyst", password="not-" + UNGRANTED_PASSWORD)
    with pytest.raises(query.AuthenticationError, match="error 401"):
        query.run(settings, "SELECT 1", user="nobody_at_all", password=UNGRANTED_PASSWORD)


def test_plain_http_gets_no_answer_and_https_needs_a_password(settings):
    # The only listening port speaks TLS: a plain HTTP request gets no HTTP reply at all.
    with pytest.raises((urllib.error.URLError, http.client.HTTPException, OSError)):
        urllib.request.urlopen(f"http://127.0.0.1:{settings.trino_port}/v1/info", timeout=5)  # noqa: S310
    with socket.create_connection(("127.0.0.1", settings.trino_port), timeout=5) as raw:
        raw.sendall(b"GET /v1/info HTTP/1.0\r\n\r\n")
        assert not raw.recv(64).startswith(b"HTTP/")
    import ssl

    context = ssl.create_default_context(cafile=str(settings.trino_certificate_path))
    request = urllib.request.Request(
        f"{settings.trino_url}/v1/statement", data=b"SELECT 1", headers={"X-Trino-User": "datong"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5, context=context)  # noqa: S310
    assert refused.value.code == 401


def test_a_grant_shows_its_columns_masked_and_its_rows_only(settings):
    grant_to_civil_affairs(settings, full_grant())
    rows = eventually(lambda: as_user(settings, SELECT), "granted rows")
    assert rows == [("420102********1234", "张伟"), ("420102********9876", "李娜")]
    # The division code is neither granted nor usable in a query; SELECT * names it too.
    assert denied(settings, f"SELECT division_code FROM lake.{TABLE}")
    assert denied(settings, f"SELECT name FROM lake.{TABLE} WHERE division_code = '420106'")
    assert denied(settings, f"SELECT * FROM lake.{TABLE}")
    assert as_user(settings, f"SELECT count(*) FROM lake.{TABLE}") == [(2,)]
    # information_schema follows the rules: only the granted columns are listed.
    columns = as_user(
        settings,
        "SELECT column_name FROM lake.information_schema.columns "
        "WHERE table_schema = 'bronze' AND table_name = 'access_person' ORDER BY 1",
    )
    assert columns == [("id_number",), ("name",)]


def test_a_revoked_grant_stops_working(settings):
    grant_to_civil_affairs(settings, full_grant())
    eventually(lambda: as_user(settings, SELECT), "granted rows")
    grant_to_civil_affairs(settings)  # republished without the grant
    eventually(lambda: denied(settings, SELECT), "denied after revocation")


def test_an_expired_grant_is_left_out(settings):
    now = dt.datetime.now(dt.UTC)
    grant_to_civil_affairs(settings, full_grant(expires_at=now - dt.timedelta(minutes=1)), now=now)
    eventually(lambda: denied(settings, SELECT), "denied with an expired grant")


def test_an_expiring_grant_stops_returning_rows_by_itself(settings):
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=12)
    grant_to_civil_affairs(settings, full_grant(expires_at=expires))
    # Nobody republishes: the filter's own current_timestamp check ends the grant.
    assert eventually(lambda: as_user(settings, SELECT), "rows before expiry")
    time.sleep(max(0.0, (expires - dt.datetime.now(dt.UTC)).total_seconds()) + 1)
    assert as_user(settings, SELECT) == []


def test_every_query_is_audited_with_user_tables_columns_and_outcome(
    settings, audit_receiver: AuditReceiver
):
    grant_to_civil_affairs(settings, full_grant())
    eventually(lambda: as_user(settings, SELECT), "granted rows")
    marker = "audit_" + secrets.token_hex(4)
    granted = query.run(
        settings, f"SELECT name AS {marker} FROM lake.{TABLE}", user=USER, password=PASSWORD
    )
    with pytest.raises(query.QueryError, match="Access Denied: Cannot"):
        as_user(settings, f"SELECT division_code AS {marker} FROM lake.{TABLE}")
    with pytest.raises(query.QueryError, match="DIVISION_BY_ZERO"):
        as_user(settings, f"SELECT 1 / (length(name) - length(name)) AS {marker} FROM lake.{TABLE}")

    def events() -> list[dict[str, Any]]:
        found = [
            e["event"]
            for e in list(audit_receiver.events)
            if marker in e["event"]["metadata"]["query"]
        ]
        return found if len(found) == 3 else []

    ok, refused, failed = sorted(eventually(events, "three audit events"), key=_order)
    assert audit_receiver.rejected == 0
    for event in (ok, refused, failed):
        assert event["context"]["user"] == USER
        assert event["context"]["groups"] == [GROUP]
    assert ok["metadata"]["queryId"] == granted.query_id
    assert ok["metadata"]["queryState"] == "FINISHED" and "failureInfo" not in ok
    [table] = ok["metadata"]["tables"]
    assert (table["catalog"], table["schema"], table["table"]) == (
        "lake",
        "bronze",
        "access_person",
    )
    assert {c["column"] for c in table["columns"]} >= {"name"}
    assert table["filters"] == ["(division_code = '420102')"]
    assert ok["statistics"]["outputRows"] == 2
    assert refused["metadata"]["queryState"] == "FAILED"
    assert refused["failureInfo"]["errorCode"]["name"] == "PERMISSION_DENIED"
    assert failed["failureInfo"]["errorCode"]["name"] == "DIVISION_BY_ZERO"


def _order(event: dict[str, Any]) -> int:
    failure = event.get("failureInfo")
    if failure is None:
        return 0
    return 1 if failure["errorCode"]["name"] == "PERMISSION_DENIED" else 2

"""The exchange end to end, as departments use it: the catalogue service and Trino running as
`datong up` starts them, a request reviewed over the catalogue's HTTP API, the grant enforced
by Trino (columns, masks, rows), revoked and expired, and every step in the audit.

The table holds six hand-written persons; what each user may see is worked out here from
those rows and the masking rules of the contract (ID: 6 + ******** + 4, name: first
character + *), never read back from the code under test.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from datong import query
from datong.settings import Settings
from tests.conftest import make_settings

pytestmark = pytest.mark.integration

TABLE = "bronze.household_register"
#: person_id, name, gender, birth_date, division_code (two in 420102, one in 420111, three
#: elsewhere): the granted scope 4201 covers exactly the first three.
PERSONS = [
    ("420102199001011234", "张三", "1", dt.date(1990, 1, 1), "420102"),
    ("420102198502023456", "李四", "2", dt.date(1985, 2, 2), "420102"),
    ("420111200012126789", "王小明", "1", dt.date(2000, 12, 12), "420111"),
    ("420502197707071111", "赵六", "2", dt.date(1977, 7, 7), "420502"),
    ("420602196606062222", "孙七", "1", dt.date(1966, 6, 6), "420602"),
    ("422801195505053333", "周八", "2", dt.date(1955, 5, 5), "422801"),
]
SEEN_BY_EDUCATION = {
    ("420102********1234", "张*", "1"),
    ("420102********3456", "李*", "2"),
    ("420111********6789", "王*", "1"),
}
DENIED = "Access Denied"


def poll(check: Callable[[], Any], what: str, seconds: float = 30) -> Any:
    """Retry ``check`` until it returns a truthy value (publication and Trino's 1 s refresh)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            value = check()
            if value:
                return value
        except (query.QueryError, query.AuthenticationError, AssertionError):
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds:.0f} s")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def exchange(spark, tmp_path_factory, s3_test_settings) -> Iterator[Settings]:
    """Trino + the catalogue service on a file:// lake holding one small Delta table."""
    from catalog import db
    from catalog.service import now_utc
    from catalog.sync import sync
    from datong.contracts import load_resources
    from datong.query import register_table
    from datong.services import platform
    from datong.storage import spark_location

    settings = make_settings(tmp_path_factory.mktemp("exchange"), "file", s3_test_settings)
    platform.up(settings)
    try:
        assert "catalog" in platform.wanted_services(settings)
        contract = load_resources()[TABLE]
        names = [element.name for element in contract.elements]
        given = ("person_id", "name", "gender", "birth_date", "division_code")
        rows = [
            tuple(dict(zip(given, person, strict=True)).get(n) for n in names) for person in PERSONS
        ]
        schema = ", ".join(f"{n} {'date' if n == 'birth_date' else 'string'}" for n in names)
        frame = spark.createDataFrame(rows, schema)
        frame.write.format("delta").mode("overwrite").save(spark_location(settings, TABLE))
        query.ensure_schemas(settings, ("bronze",))
        register_table(settings, TABLE)
        with db.session_scope(settings.catalog_database_url) as session:
            sync(session, settings.state_dir, now_utc())
        yield settings
    finally:
        platform.down(settings)


class Api:
    """The catalogue's REST API as one user (bearer token)."""

    def __init__(self, settings: Settings, token: str) -> None:
        self.client = httpx.Client(
            base_url=settings.catalog_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )

    def __call__(self, method: str, path: str, expect: int = 200, **kw: Any) -> Any:
        response = self.client.request(method, path, **kw)
        assert response.status_code == expect, (method, path, response.text)
        return response.json()


def test_request_review_grant_revoke_and_audit(exchange):
    from catalog.security import admin_secret

    settings = exchange
    admin = Api(settings, admin_secret(settings.state_dir)["token"])
    passwords = {}

    def user(name: str, role: str, department: str) -> Api:
        passwords[name] = "pw-" + secrets.token_urlsafe(16)
        admin("POST", "/users", 201, json={"name": name, "role": role,
              "department": department, "password": passwords[name]})  # fmt: skip
        token = admin("POST", f"/users/{name}/tokens", 201, json={"label": "test"})["token"]
        return Api(settings, token)

    analyst = user("edu_analyst", "analyst", "education")
    other = user("health_analyst", "analyst", "health")
    reviewer = user("ps_reviewer", "reviewer", "public_security")
    wrong_reviewer = user("health_reviewer", "reviewer", "health")
    admin("POST", "/admin/publish")

    def sql(name: str, statement: str) -> list[tuple]:
        return query.run(settings, statement, user=name, password=passwords[name]).rows

    granted_sql = f"SELECT person_id, name, gender FROM lake.{TABLE}"

    # Before any grant: an authenticated user of another department sees nothing.
    with pytest.raises(query.QueryError, match=DENIED):
        poll(lambda: sql("edu_analyst", granted_sql), "users published", seconds=15)

    resource = analyst("GET", f"/resources/{TABLE}")
    assert resource["share_type"] == "CONDITIONAL"
    request = analyst("POST", "/requests", 201, json={
        "resource": TABLE,
        "purpose": "学籍核验：核对入学儿童的户籍信息",
        "fields": ["person_id", "name", "gender", "birth_date"],
        "division_prefixes": ["4201"],
        "duration_days": 30,
    })  # fmt: skip
    assert request["state"] != "GRANTED", "a conditional resource waits for its provider"

    # A reviewer of another department may not decide it; the provider's reviewer narrows it.
    wrong_reviewer("POST", f"/requests/{request['id']}/approve", 403, json={})
    approved = reviewer("POST", f"/requests/{request['id']}/approve", json={
        "fields": ["person_id", "name", "gender"], "reason": "出生日期非学籍核验所必需",
    })  # fmt: skip
    assert approved["state"] == "GRANTED"
    # A decided request cannot be decided again.
    reviewer("POST", f"/requests/{request['id']}/refuse", 409, json={"reason": "改变主意"})

    seen = poll(lambda: set(sql("edu_analyst", granted_sql)), "grant published")
    assert seen == SEEN_BY_EDUCATION
    [(count,)] = sql("edu_analyst", f"SELECT count(*) FROM lake.{TABLE}")
    assert count == 3
    with pytest.raises(query.QueryError, match=DENIED):
        sql("edu_analyst", f"SELECT birth_date FROM lake.{TABLE}")  # narrowed away
    with pytest.raises(query.QueryError, match=DENIED):
        sql("health_analyst", granted_sql)  # the grant is education's alone
    assert other("GET", "/grants", params={"active": True}) == []

    [grant] = analyst("GET", "/grants", params={"active": True})
    reviewer("POST", f"/grants/{grant['id']}/revoke", json={"reason": "核验工作已结束"})
    poll(lambda: _denied(lambda: sql("edu_analyst", granted_sql)), "revocation published")

    # The provider sees who read its resource through Trino, denied attempts included.
    def usage() -> list[dict]:
        found = reviewer("GET", f"/resources/{TABLE}/usage")
        return found if len({u["state"] for u in found if u["user"] == "edu_analyst"}) > 1 else []

    found = poll(usage, "query events audited")
    mine = [u for u in found if u["user"] == "edu_analyst"]
    assert all(u["department"] == "education" and u["table"] == TABLE for u in mine)
    finished = [u for u in mine if u["state"] == "FINISHED" and u["sql"] == granted_sql]
    assert finished and {u["output_rows"] for u in finished} == {3}
    # Trino reports what the scan read: the selected columns and the row filter's column.
    assert set(finished[0]["columns"]) == {"person_id", "name", "gender", "division_code"}
    assert any(u["state"] == "FAILED" for u in mine)
    assert not [u for u in found if u["user"] == "health_analyst" and u["state"] == "FINISHED"]

    actions = [(e["actor"], e["action"]) for e in admin("GET", "/audit/events")]
    for expected in [("edu_analyst", "request.create"), ("ps_reviewer", "request.approve"),
                     ("ps_reviewer", "grant.revoke")]:  # fmt: skip
        assert expected in actions, actions


def test_a_grant_stops_working_when_it_expires(exchange):
    """Expiry needs no human: the server republishes and Trino's filter ends the rows."""
    from sqlalchemy import select

    from catalog import db
    from catalog.models import Grant
    from catalog.security import admin_secret

    settings = exchange
    admin = Api(settings, admin_secret(settings.state_dir)["token"])
    password = "pw-" + secrets.token_urlsafe(16)
    admin("POST", "/users", 201, json={"name": "tax_analyst", "role": "analyst",
          "department": "tax", "password": password})  # fmt: skip
    token = admin("POST", "/users/tax_analyst/tokens", 201, json={"label": "t"})["token"]
    analyst = Api(settings, token)
    request = analyst("POST", "/requests", 201, json={
        "resource": TABLE, "purpose": "纳税人身份核验", "fields": ["person_id"],
        "duration_days": 1,
    })  # fmt: skip
    reviewer_password = "pw-" + secrets.token_urlsafe(16)
    admin("POST", "/users", 201, json={"name": "ps_reviewer2", "role": "reviewer",
          "department": "public_security", "password": reviewer_password})  # fmt: skip
    reviewer = Api(
        settings, admin("POST", "/users/ps_reviewer2/tokens", 201, json={"label": "t"})["token"]
    )
    reviewer("POST", f"/requests/{request['id']}/approve", json={})

    statement = f"SELECT count(*) FROM lake.{TABLE}"

    def count() -> int:
        return query.run(settings, statement, user="tax_analyst", password=password).rows[0][0]

    assert poll(count, "grant published") == len(PERSONS)
    # Shorten the grant to a few seconds from now, as if its day had nearly passed.
    with db.session_scope(settings.catalog_database_url) as session:
        grant = session.scalar(select(Grant).where(Grant.request_id == request["id"]))
        grant.expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=8)
    poll(lambda: _denied(count), "expired grant withdrawn", seconds=45)


def _denied(action: Callable[[], Any]) -> bool:
    try:
        action()
    except query.QueryError as error:
        return DENIED in str(error)
    return False


def test_a_closed_quality_gate_withholds_a_grant_until_it_opens_again(exchange, spark):
    """发布闸门: a failed ``fail`` expectation keeps the table's grants out of Trino."""
    from catalog.security import admin_secret
    from datong import tables
    from jobs.ingest import register_in_trino
    from jobs.quality import GATE, GATE_SCHEMA

    settings = exchange
    admin = Api(settings, admin_secret(settings.state_dir)["token"])
    password = "pw-" + secrets.token_urlsafe(16)
    admin("POST", "/users", 201, json={"name": "credit_analyst", "role": "analyst",
          "department": "credit", "password": password})  # fmt: skip
    token = admin("POST", "/users/credit_analyst/tokens", 201, json={"label": "t"})["token"]
    analyst = Api(settings, token)
    request = analyst("POST", "/requests", 201, json={
        "resource": TABLE, "purpose": "信用主体身份核验", "fields": ["gender"],
        "duration_days": 5,
    })  # fmt: skip
    reviewer_password = "pw-" + secrets.token_urlsafe(16)
    admin("POST", "/users", 201, json={"name": "ps_reviewer3", "role": "reviewer",
          "department": "public_security", "password": reviewer_password})  # fmt: skip
    reviewer = Api(
        settings, admin("POST", "/users/ps_reviewer3/tokens", 201, json={"label": "t"})["token"]
    )
    reviewer("POST", f"/requests/{request['id']}/approve", json={})
    statement = f"SELECT gender FROM lake.{TABLE}"

    def rows() -> list[tuple]:
        return query.run(settings, statement, user="credit_analyst", password=password).rows

    assert len(poll(rows, "grant published")) == len(PERSONS)

    def gate(run_id: str, passed: bool, reasons: str) -> None:
        at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        frame = spark.createDataFrame([(run_id, TABLE, at, passed, reasons)], GATE_SCHEMA)
        tables.append(frame, settings, GATE)
        register_in_trino(settings, [GATE])

    reason = "QUALITY-013 on person_id: 1 of 6 rows (key repeated / 主键重复)"
    gate("run-closed", False, reason)
    [grant] = analyst("GET", "/grants", params={"active": True})
    published = admin("POST", "/admin/publish")
    assert grant["id"] not in published["grants"]
    poll(lambda: _denied(rows), "gate closed")
    [event] = [e for e in admin("GET", "/audit/events") if e["action"] == "grants.publish"][:1]
    assert event["detail"]["held_by_quality_gate"] == {TABLE: reason}

    gate("run-clean", True, "")
    admin("POST", "/admin/publish")
    assert len(poll(rows, "gate open again")) == len(PERSONS)

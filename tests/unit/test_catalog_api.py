"""The catalogue's REST API through FastAPI's TestClient: bearer tokens, the exchange over
HTTP with its 401/403/404/409/422 refusals, list exports, Trino's audit hook, schemathesis."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from catalog.api import create_app
from catalog.security import admin_secret, audit_token
from datong.contracts import SCHEMAS_DIR, load_departments, load_resources
from datong.services.process import free_port
from datong.settings import Settings
from tests.unit import catalog_support as support

catalog_state, sqlite_template = support.catalog_state, support.sqlite_template
postgres_template, catalog_url = support.postgres_template, support.catalog_url
DATA = Path(__file__).resolve().parent.parent / "data" / "trino"


@pytest.fixture
def client(catalog_url, catalog_state):
    # Trino on a port nobody listens on: the lake is unknown, never the user's own Trino.
    settings = Settings(
        state_dir=catalog_state, catalog_database_url=catalog_url, trino_port=free_port()
    )
    with TestClient(create_app(settings, publish=False, maintain_every=None)) as test_client:
        yield test_client


def _login(client, name, password=support.PASSWORD) -> dict[str, str]:
    response = client.post("/auth/login", json={"name": name, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def _admin(catalog_state) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_secret(catalog_state)['token']}"}


def test_every_call_needs_a_valid_token(client, catalog_state):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/resources").status_code == 401
    bad = client.get("/resources", headers={"Authorization": "Bearer dt_nope"})
    assert bad.status_code == 401 and "unknown, revoked or inactive token" in bad.json()["detail"]
    wrong = client.post("/auth/login", json={"name": "wj_analyst", "password": "wrong-password!"})
    assert wrong.status_code == 401
    listed = client.get("/resources", headers=_admin(catalog_state)).json()
    assert len(listed) == len(load_resources()) + 4  # + the four base-library tables
    events = client.get("/audit/events", headers=_admin(catalog_state)).json()
    assert {"login.failed"} <= {e["action"] for e in events}


def test_the_exchange_over_http(client, catalog_url):
    analyst, reviewer = _login(client, "wj_analyst"), _login(client, "ga_reviewer")
    body = {
        "resource": "bronze.household_register",
        "purpose": "新生儿落户核验",
        "fields": ["person_id", "name"],
        "division_prefixes": ["4201"],
        "duration_days": 30,
    }
    created = client.post("/requests", json=body, headers=analyst)
    assert created.status_code == 201 and created.json()["state"] == "PENDING_REVIEW"
    request_id = created.json()["id"]
    other = _login(client, "mz_reviewer")
    denied = client.post(f"/requests/{request_id}/approve", json={}, headers=other)
    assert denied.status_code == 403 and "awaits public_security" in denied.json()["detail"]
    widened = client.post(
        f"/requests/{request_id}/approve", json={"fields": ["gender"]}, headers=reviewer
    )
    assert widened.status_code == 422 and "gender was not requested" in widened.json()["detail"]
    approved = client.post(
        f"/requests/{request_id}/approve", json={"fields": ["name"]}, headers=reviewer
    )
    assert approved.status_code == 200 and approved.json()["state"] == "GRANTED"
    assert approved.json()["grant"]["fields"] == ["name"]
    again = client.post(f"/requests/{request_id}/refuse", json={"reason": "迟了"}, headers=reviewer)
    assert again.status_code == 409 and "GRANTED" in again.json()["detail"]
    shown = client.get(f"/requests/{request_id}", headers=analyst).json()
    assert [h["to"] for h in shown["history"]] == ["SUBMITTED", "PENDING_REVIEW", "GRANTED"]
    assert (
        client.get(f"/requests/{request_id}", headers=_login(client, "sw_reviewer")).status_code
        == 403
    )
    grants = client.get("/grants?active=true", headers=analyst).json()
    assert [g["resource"] for g in grants] == ["bronze.household_register"]
    revoked = client.post(
        f"/grants/{grants[0]['id']}/revoke",
        json={"reason": "用途已完成"},
        headers=_login(client, "ga_admin"),
    )
    assert revoked.status_code == 200 and revoked.json()["revoke_reason"] == "用途已完成"
    assert client.get("/grants?active=true", headers=analyst).json() == []


def test_bad_input_is_refused_with_422_and_missing_things_with_404(client, catalog_state):
    analyst = _login(client, "wj_analyst")
    for body in (
        {
            "resource": "bronze.household_register",
            "purpose": "x",
            "fields": ["name"],
            "duration_days": 1,
        },
        {
            "resource": "bronze.household_register",
            "purpose": "核验户籍",
            "fields": [],
            "duration_days": 1,
        },
        {
            "resource": "bronze.household_register",
            "purpose": "核验户籍",
            "fields": ["name"],
            "duration_days": 5000,
        },
        {
            "resource": "bronze.household_register",
            "purpose": "核验户籍",
            "fields": ["name"],
            "duration_days": 5,
            "division_prefixes": ["42a"],
        },
    ):
        assert client.post("/requests", json=body, headers=analyst).status_code == 422
    missing = client.get("/resources/bronze.nothing_here", headers=analyst)
    assert missing.status_code == 404 and "bronze.nothing_here" in missing.json()["detail"]
    assert client.get("/requests/999", headers=analyst).status_code == 404
    user = {
        "name": "x_reviewer",
        "role": "reviewer",
        "department": "nowhere",
        "password": "a-long-password",
    }
    assert client.post("/users", json=user, headers=_admin(catalog_state)).status_code == 404


def test_tokens_are_shown_once_and_stored_hashed(client, catalog_state, catalog_url):
    from sqlalchemy import create_engine, text

    admin = _admin(catalog_state)
    created = client.post(
        "/users",
        headers=admin,
        json={
            "name": "wj_engineer",
            "role": "data_engineer",
            "department": "health",
            "password": "engineer-password",
        },
    )
    assert created.status_code == 201
    token = client.post("/users/wj_engineer/tokens", json={"label": "etl"}, headers=admin)
    assert token.status_code == 201
    value = token.json()["token"]
    assert client.get("/me", headers={"Authorization": f"Bearer {value}"}).json()["name"] == (
        "wj_engineer"
    )
    engine = create_engine(catalog_url)
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT token_sha256 FROM api_token")).scalars().all()
    engine.dispose()
    assert value not in stored
    import hashlib

    assert hashlib.sha256(value.encode()).hexdigest() in stored
    # A department admin may not mint tokens for another department's users.
    other = client.post("/users/wj_engineer/tokens", json={}, headers=_login(client, "ga_admin"))
    assert other.status_code == 403


def test_lists_exported_as_csv_and_xlsx_match_the_contracts(client):
    analyst = _login(client, "wj_analyst")
    resources = load_resources()
    departments = load_departments()
    household = resources["bronze.household_register"]
    text = client.get("/lists/share?format=csv", headers=analyst).content.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    by_name = {row["数据集 name"]: row for row in rows}
    assert "bronze.natural_person_taxpayer" not in by_name  # 不予共享: on the negative list
    row = by_name["bronze.household_register"]
    assert row["共享类型 share_type"] == "有条件共享"
    assert row["共享依据 legal_basis"] == household.catalog.legal_basis
    assert row["提供部门 provider"] == departments["public_security"].name_zh
    assert row["信息项 items"].split("、") == [e.title_zh for e in household.elements]
    assert row["资源代码 code"] == "301001001/HBGA0001"
    response = client.get("/lists/negative?format=xlsx", headers=analyst)
    sheet = load_workbook(io.BytesIO(response.content)).active
    values = list(sheet.iter_rows(values_only=True))
    taxpayer = resources["bronze.natural_person_taxpayer"]
    assert sheet.title == "负面清单"
    assert values[1][1:] == (
        taxpayer.title_zh,
        taxpayer.name,
        departments["tax"].name_zh,
        taxpayer.catalog.legal_basis,
    )
    assert len(values) == 2
    responsibility = client.get("/lists/responsibility", headers=analyst).json()
    population = next(r for r in responsibility if r["name"] == "population.person")
    declared = yaml.safe_load((SCHEMAS_DIR / "libraries" / "population.yaml").read_text())
    source_departments = {source["department"] for source in declared["sources"].values()}
    assert set(population["sources"].split("、")) == {
        departments[code].name_zh for code in source_departments
    }
    assert population["provider"] == departments["data_bureau"].name_zh


def test_figures_count_the_contracts(client):
    figures = client.get("/figures", headers=_login(client, "wj_analyst")).json()
    resources = load_resources()
    shares = [r.catalog.share_type for r in resources.values()]
    assert figures["resources"] == len(resources) + 4
    assert figures["by_share_type"]["NOT_SHARED"] == shares.count("NOT_SHARED")
    # The four base tables are conditional: 13 of the department resources plus those.
    assert figures["by_share_type"]["CONDITIONAL"] == shares.count("CONDITIONAL") + 4
    assert figures["by_department"]["credit"] == 4 + 1  # 双公示 ×2, red and black lists, profile
    # Nothing is known about the lake yet: nothing linked, nothing claimed.
    assert figures["linked"] == 0 and figures["linked_rate"] == 0.0


def test_trino_query_events_need_the_audit_token_and_feed_provider_usage(client, catalog_state):
    payload = json.loads((DATA / "query_completed.json").read_text())
    # The captured query read bronze.people; here it reads the household register.
    payload["ioMetadata"]["inputs"][0]["table"] = "household_register"
    payload["context"]["user"] = "wj_analyst"
    assert client.post("/audit/trino-events", json=payload).status_code == 403
    wrong = {"X-Datong-Audit-Token": "guess"}
    assert client.post("/audit/trino-events", json=payload, headers=wrong).status_code == 403
    good = {"X-Datong-Audit-Token": audit_token(catalog_state)}
    first = client.post("/audit/trino-events", json=payload, headers=good)
    assert first.status_code == 202 and first.json()["stored"] is True
    assert client.post("/audit/trino-events", json=payload, headers=good).json()["stored"] is False
    assert client.post("/audit/trino-events", json={"x": 1}, headers=good).status_code == 422
    used = client.get(
        "/resources/bronze.household_register/usage", headers=_login(client, "ga_admin")
    ).json()
    assert len(used) == 1
    assert used[0]["user"] == "wj_analyst" and used[0]["department"] == "health"
    assert used[0]["columns"] == ["division_code", "name", "id_number"]
    assert used[0]["output_rows"] == 1
    nosy = client.get(
        "/resources/bronze.household_register/usage", headers=_login(client, "wj_admin")
    )
    assert nosy.status_code == 403


@pytest.mark.slow  # ~15 s: a few examples of every operation
def test_no_server_error_anywhere_in_the_openapi_spec(sqlite_template, catalog_state, tmp_path):
    import shutil

    import schemathesis
    from hypothesis import HealthCheck, given, settings

    shutil.copyfile(sqlite_template, tmp_path / "catalog.db")
    app = create_app(
        Settings(
            state_dir=catalog_state,
            catalog_database_url=f"sqlite:///{tmp_path / 'catalog.db'}",
            trino_port=free_port(),
        ),
        publish=False,
        maintain_every=None,
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {admin_secret(catalog_state)['token']}"}
    failures = []
    for operation in schema.get_all_operations():
        op = operation.ok()

        @settings(
            max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        @given(case=op.as_strategy())
        def check(case):
            response = case.call(headers=headers)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code}")

        check()
    assert failures == []


def test_the_server_expires_grants_by_itself(catalog_url, catalog_state):
    import datetime as dt
    import time

    from catalog import db, people, workflow
    from catalog.schemas import RequestCreate

    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    with db.session_scope(catalog_url) as session:
        body = RequestCreate(
            resource="bronze.standard_address",
            purpose="地址核验",
            fields=["full_address"],
            duration_days=1,
        )
        request = workflow.create_request(
            session, people.user(session, "wj_analyst"), body, long_ago
        )
        request_id = request.id
    settings = Settings(
        state_dir=catalog_state, catalog_database_url=catalog_url, trino_port=free_port()
    )
    app = create_app(settings, publish=False, maintain_every=0.2)
    with TestClient(app) as test_client:
        headers = _admin(catalog_state)
        state = None
        for _ in range(100):  # a bound on waiting, not a measure of speed
            state = test_client.get(f"/requests/{request_id}", headers=headers).json()["state"]
            if state == "EXPIRED":
                break
            time.sleep(0.1)
    assert state == "EXPIRED"

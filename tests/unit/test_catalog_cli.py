"""``datong catalog|request|review``: the same service layer from the command line; a
refusal is exit code 1 with the reason, and the bootstrap admin's secrets never printed."""

from __future__ import annotations

import json
import stat

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from datong.cli import app
from datong.contracts import load_base_resources, load_resources
from datong.services.process import free_port


@pytest.fixture
def run(tmp_path):
    runner = CliRunner()
    env = {
        "DATONG_STATE_DIR": str(tmp_path / "state"),
        "DATONG_TRINO_PORT": str(free_port()),
        "DATONG_CATALOG_DATABASE_URL": "",
    }

    def invoke(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == code, result.output
        return result.output

    invoke("catalog", "sync")
    return invoke


def test_sync_is_idempotent_and_keeps_the_admin_secret_private(run, tmp_path):
    total = len(load_resources()) + len(load_base_resources())
    again = run("catalog", "sync")
    assert f"resources created: 0, updated: 0, unchanged: {total}" in again
    secret_file = tmp_path / "state" / "secrets" / "catalog-admin.json"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = json.loads(secret_file.read_text())
    listing = run("catalog", "list")
    assert secret["password"] not in listing and secret["token"] not in listing
    assert listing.count("\n") == total


def test_request_and_review_from_the_command_line(run, tmp_path):
    for name, role, department in [
        ("ga_reviewer", "reviewer", "public_security"),
        ("mz_reviewer", "reviewer", "civil_affairs"),
        ("wj_analyst", "analyst", "health"),
    ]:
        assert "password (shown once)" in run(
            "catalog", "users", "create", name, "--role", role, "--department", department
        )
    created = run(
        "request",
        "create",
        "bronze.household_register",
        "--purpose",
        "新生儿落户核验",
        "--days",
        "30",
        "-f",
        "name",
        "-f",
        "person_id",
        "-d",
        "4201",
        "--user",
        "wj_analyst",
    )
    assert created.startswith("request 1: PENDING_REVIEW")
    refused = run("review", "approve", "1", "--user", "mz_reviewer", code=1)
    assert "may not review request 1: it awaits public_security" in refused
    assert "request 1: GRANTED" in run(
        "review", "approve", "1", "-f", "name", "--user", "ga_reviewer"
    )
    late = run("review", "refuse", "1", "--reason", "迟了", "--user", "ga_reviewer", code=1)
    assert "request 1 is GRANTED" in late
    shown = json.loads(run("request", "show", "1", "--user", "wj_analyst"))
    assert shown["grant"]["fields"] == ["name"]
    assert [h["to"] for h in shown["history"]] == ["SUBMITTED", "PENDING_REVIEW", "GRANTED"]
    bad = run(
        "request",
        "create",
        "bronze.household_register",
        "--purpose",
        "核验户籍",
        "--days",
        "3",
        "-f",
        "nickname",
        "--user",
        "wj_analyst",
        code=1,
    )
    assert "bronze.household_register has no field nickname" in bad
    too_long = run(
        "request",
        "create",
        "bronze.household_register",
        "--purpose",
        "核验户籍",
        "--days",
        "5000",
        "-f",
        "name",
        "--user",
        "wj_analyst",
        code=1,
    )
    assert "duration_days" in too_long


def test_lists_and_figures_from_the_command_line(run, tmp_path):
    out = tmp_path / "negative.xlsx"
    run("catalog", "lists", "negative", "--out", str(out))
    rows = list(load_workbook(out).active.iter_rows(values_only=True))
    not_shared = [r for r in load_resources().values() if r.catalog.share_type == "NOT_SHARED"]
    assert [row[2] for row in rows[1:]] == [r.name for r in not_shared]
    shown = json.loads(run("catalog", "show", "bronze.administrative_penalty"))
    penalty = load_resources()["bronze.administrative_penalty"].catalog
    assert (shown["share_type"], shown["open_type"]) == ("UNCONDITIONAL", "OPEN")
    assert shown["legal_basis"] == penalty.legal_basis
    figures = json.loads(run("catalog", "figures"))
    assert figures["resources"] == len(load_resources()) + len(load_base_resources())
    assert "unknown list" in run("catalog", "lists", "open", "--out", str(out), code=1)


def test_a_provider_sees_who_used_its_resource(run, tmp_path):
    from pathlib import Path

    from catalog import audit, db

    run(
        "catalog",
        "users",
        "create",
        "ga_admin",
        "--role",
        "department_admin",
        "--department",
        "public_security",
    )
    run(
        "catalog",
        "users",
        "create",
        "wj_admin",
        "--role",
        "department_admin",
        "--department",
        "health",
    )
    data = Path(__file__).resolve().parent.parent / "data" / "trino" / "query_completed.json"
    payload = json.loads(data.read_text())
    payload["ioMetadata"]["inputs"][0]["table"] = "household_register"
    url = f"sqlite:///{tmp_path / 'state' / 'catalog.db'}"
    with db.session_scope(url) as session:
        assert audit.store_query_event(session, audit.parse_query_event(payload))
    used = json.loads(run("catalog", "usage", "bronze.household_register", "--user", "ga_admin"))
    assert [(u["user"], u["table"], u["output_rows"]) for u in used] == [
        ("alice", "bronze.household_register", 1)
    ]
    denied = run("catalog", "usage", "bronze.household_register", "--user", "wj_admin", code=1)
    assert "another department" in denied


def test_a_demand_is_answered_by_cataloguing_from_a_yaml_file(run, tmp_path):
    run(
        "catalog",
        "users",
        "create",
        "ga_admin",
        "--role",
        "department_admin",
        "--department",
        "public_security",
    )
    run("catalog", "users", "create", "wj_analyst", "--role", "analyst", "--department", "health")
    sent = run(
        "request",
        "demand",
        "create",
        "--provider",
        "public_security",
        "--title",
        "居住证信息",
        "--description",
        "用于公共服务",
        "--user",
        "wj_analyst",
    )
    assert sent.startswith("demand 1: OPEN")
    draft = tmp_path / "residence_permit.yaml"
    draft.write_text(
        "name: bronze.residence_permit\ntitle_zh: 居住证信息\nsummary: 居住证办理记录\n"
        "update_cycle: daily\nshare_type: CONDITIONAL\nshare_condition: 限于公共服务\n"
        "legal_basis: 《居住证暂行条例》\nshare_method: [table]\nopen_type: NOT_OPEN\n"
        "items:\n  - {name: person_id, title_zh: 公民身份号码, type: string, grade: general-4,"
        " personal: true, standard: GB 11643}\n",
        encoding="utf-8",
    )
    done = run(
        "request", "demand", "catalogue", "1", "--resource-file", str(draft), "--user", "ga_admin"
    )
    assert "CATALOGUED as bronze.residence_permit" in done
    shown = json.loads(run("catalog", "show", "bronze.residence_permit"))
    assert (shown["kind"], shown["provider"], shown["share_type"]) == (
        "manual",
        "public_security",
        "CONDITIONAL",
    )
    assert shown["items"][0]["mask"] == "id"


def test_only_a_data_engineer_decides_a_linkage_and_the_refusal_writes_nothing(run, tmp_path):
    """Linkage rows are personal data: an analyst may neither list nor decide them."""
    run("catalog", "users", "create", "wj_analyst", "--role", "analyst", "--department", "health")
    decide = ["linkage", "decide", "civil/d.csv#1", "--person", "420102195001011238"]
    for args in (["linkage", "list"], decide):
        refused = run(*args, "--user", "wj_analyst", code=1)
        assert "wj_analyst (analyst) may not" in refused
    assert "either --person ID or --reject" in run("linkage", "decide", "civil/d.csv#1", code=1)
    assert "either --person ID or --reject" in run(
        "linkage", "decide", "civil/d.csv#1", "--person", "1", "--reject", code=1
    )
    # Nothing was decided, so the audit trail holds no linkage action.
    from catalog.models import AuditEvent
    from catalog.service import Catalog
    from datong.settings import load_settings

    settings = load_settings(state_dir=tmp_path / "state", catalog_database_url="")
    with Catalog(settings).session() as session:
        actions = {event.action for event in session.query(AuditEvent).all()}
    assert actions, "the audit trail is empty: read from the wrong catalogue"
    assert not {a for a in actions if a.startswith("linkage.")}

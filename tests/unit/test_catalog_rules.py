"""Pure rules of the catalogue (deadlines, masks, row scopes), Trino's query events as Trino
476 really sends them, and the schema: the models and the migrations agree."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path

import pytest

from catalog import audit, db, rules
from catalog.models import Base
from catalog.security import BCRYPT_COST, audit_token, check_password, hash_password, token_hash

DATA = Path(__file__).resolve().parent.parent / "data" / "trino"
UTC = dt.UTC


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        # Monday + 10 working days = Monday two weeks later.
        (dt.datetime(2026, 3, 2, 9, tzinfo=UTC), dt.datetime(2026, 3, 16, 9, tzinfo=UTC)),
        # Friday: the weekend is skipped twice → Friday two weeks later.
        (dt.datetime(2026, 3, 6, 17, tzinfo=UTC), dt.datetime(2026, 3, 20, 17, tzinfo=UTC)),
        # Saturday: counting starts on Monday → Friday of the week after next.
        (dt.datetime(2026, 3, 7, 10, tzinfo=UTC), dt.datetime(2026, 3, 20, 10, tzinfo=UTC)),
    ],
)
def test_review_deadline_is_ten_working_days(start, expected):
    assert rules.add_working_days(start, rules.REVIEW_WORKING_DAYS) == expected


@pytest.mark.parametrize(
    ("name", "grade", "personal", "standard", "kind"),
    [
        ("person_id", "general-4", True, "GB 11643", "id"),
        ("holder_id", "general-4", True, None, "id"),
        ("license_no", "general-4", True, None, "id"),
        ("name", "general-3", True, None, "name"),
        ("child_name", "general-4", True, None, "name"),
        # Legal representatives' names are published by law (general-2): shown.
        ("legal_representative_name", "general-2", True, None, None),
        ("name", "general-1", False, None, None),  # an enterprise's name
        ("credit_code", "general-1", False, "GB 32100", None),
        ("ethnicity", "general-4", True, "GB/T 3304", None),
    ],
)
def test_mask_kinds_follow_grade_and_personal_flag(name, grade, personal, standard, kind):
    assert rules.mask_kind(name, grade, personal, standard) == kind


def test_mask_expressions_and_row_filters_are_trino_sql():
    assert rules.mask_expression("person_id", "id") == (
        'concat(substr("person_id", 1, 6), \'********\', substr("person_id", -4))'
    )
    assert rules.mask_expression("name", "name") == "concat(substr(\"name\", 1, 1), '*')"
    assert rules.row_filter("division_code", ["4202", "4201"]) == (
        "\"division_code\" LIKE '4201%' OR \"division_code\" LIKE '4202%'"
    )
    assert rules.row_filter("division_code", None) is None
    assert rules.row_filter("division_code", []) == "false"
    with pytest.raises(ValueError, match="not 2 to 12 digits"):
        rules.row_filter("division_code", ["42' OR 1=1 --"])


def test_narrowed_scopes_keep_rows_every_approver_allowed():
    assert rules.narrow_scope([None, None]) is None
    assert rules.narrow_scope([["42"], ["4201", "4202"]]) == ["4201", "4202"]
    assert rules.narrow_scope([["42"], ["4201"], ["420102", "4202"]]) == ["420102"]
    assert rules.narrow_scope([["4201"], ["4202"]]) == []


def test_a_granted_query_event_from_trino_476():
    parsed = audit.parse_query_event(json.loads((DATA / "query_completed.json").read_text()))
    assert parsed.query_id == "20261201_091739_00028_hnspk"
    assert parsed.user == "alice" and parsed.source == "datong" and parsed.groups == ("dept_a",)
    assert parsed.sql == "SELECT id_number, name FROM lake.bronze.people"
    assert parsed.state == "FINISHED" and parsed.error_name is None
    assert parsed.output_rows == 1
    assert parsed.reads == (
        audit.TableRead("lake", "bronze.people", ("division_code", "name", "id_number")),
    )
    assert parsed.started_at == dt.datetime(2026, 12, 1, 9, 17, 39, 560000, tzinfo=UTC)
    assert parsed.ended_at == dt.datetime(2026, 12, 1, 9, 17, 39, 715000, tzinfo=UTC)


def test_denied_and_failed_query_events_from_trino_476():
    denied = audit.parse_query_event(json.loads((DATA / "query_completed_failed.json").read_text()))
    assert denied.state == "FAILED" and denied.error_name == "PERMISSION_DENIED"
    assert "Cannot select from table lake.bronze.people" in denied.error_message
    assert denied.sql == "SELECT division_code FROM lake.bronze.people"
    # The event lists no tables; the table comes from the message, so its provider sees it.
    assert [(r.catalog, r.table, r.columns) for r in denied.reads] == [
        ("lake", "bronze.people", ())
    ]
    error = audit.parse_query_event(json.loads((DATA / "query_completed_error.json").read_text()))
    assert (error.state, error.error_name, error.sql) == (
        "FAILED",
        "DIVISION_BY_ZERO",
        "SELECT 1/0",
    )


@pytest.mark.parametrize(
    "payload", [[], {"metadata": {}}, {"metadata": {"queryId": "q"}, "context": {}}, "x"]
)
def test_a_payload_that_is_no_query_event_is_refused(payload):
    with pytest.raises(audit.EventError):
        audit.parse_query_event(payload)


def test_passwords_are_bcrypt_cost_10_and_tokens_sha256():
    hashed = hash_password("a long enough password")
    assert hashed.startswith(f"$2b${BCRYPT_COST:02d}$") and BCRYPT_COST == 10
    assert check_password("a long enough password", hashed)
    assert not check_password("another password", hashed)
    assert token_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_the_audit_token_is_generated_once_per_state_dir(tmp_path):
    first = audit_token(tmp_path)
    assert audit_token(tmp_path) == first and len(first) >= 40
    secret = tmp_path / "secrets" / "audit.json"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert json.loads(secret.read_text()) == {"token": first}


def test_the_models_and_the_migrations_agree(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    url = f"sqlite:///{tmp_path / 'c.db'}"
    db.migrate(url)
    db.migrate(url)  # idempotent
    with db.engine_for(url).connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    db.engine_for(url).dispose()


@pytest.mark.integration
def test_the_models_and_the_migrations_agree_on_postgresql(postgres_settings):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from datong.services.postgres import ensure_database

    url = ensure_database(postgres_settings, "catalog_schema_check")
    db.migrate(url)
    with db.engine_for(url).connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    db.engine_for(url).dispose()

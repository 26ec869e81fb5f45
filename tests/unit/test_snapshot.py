"""Which batches of a full snapshot may retire keys, and what a quarantined row still names."""

from __future__ import annotations

import datetime as dt

from datong.contracts import load_resources
from jobs.snapshot import complete, full_resources, keyed_rows

T = dt.datetime(2026, 1, 5, 8)


def _attempt(file: str, status: str, minutes: int) -> dict:
    return {"file": file, "status": status, "finished_at": T + dt.timedelta(minutes=minutes)}


def test_a_batch_is_complete_when_each_file_succeeded_at_its_latest_attempt():
    assert complete([_attempt("a.csv", "succeeded", 1), _attempt("b.csv", "succeeded", 2)])
    # A file that failed and was sent again intact under the same name.
    assert complete([_attempt("a.csv", "succeeded", 3), _attempt("a.csv", "failed", 1)])
    # Unchanged on a later run: the skip says nothing about the success before it.
    assert complete([_attempt("a.csv", "succeeded", 1), _attempt("a.csv", "skipped", 5)])


def test_a_batch_with_a_failed_or_refused_file_is_not_complete():
    assert not complete([_attempt("a.csv", "succeeded", 1), _attempt("b.txt", "failed", 2)])
    # Ingested, then changed in place and refused: bronze no longer has what was delivered.
    assert not complete([_attempt("a.csv", "succeeded", 1), _attempt("a.csv", "failed", 4)])
    assert not complete([_attempt("a.csv", "failed", 1), _attempt("a.csv", "skipped", 2)])
    assert not complete([])


def test_the_full_snapshot_resources_are_those_the_contracts_declare():
    assert full_resources() == {
        "bronze.household_register", "bronze.student_enrollment", "bronze.credit_red_list",
        "bronze.credit_black_list", "bronze.public_institution", "bronze.social_organization",
        "bronze.administrative_division", "bronze.standard_address",
    }  # fmt: skip


def _quarantined(raw: str, *fields: str) -> dict:
    return {"_raw": raw, "problems": [{"rule_id": "INGEST-009", "field": f} for f in fields]}


ENROLLED = "S1,420102201001010011,张三,1,2010-01-01,一小,S01,小学,2016-09-01,,在读"


def test_a_row_quarantined_for_another_field_still_names_its_key():
    school = load_resources()["bronze.student_enrollment"]
    rows = keyed_rows([_quarantined(ENROLLED, "stage")], school)
    assert rows is not None and [r["student_no"] for r in rows] == ["S1"]
    assert rows[0]["status"] == "在读" and rows[0]["graduation_date"] == ""


def test_a_row_whose_key_broke_a_rule_or_that_does_not_split_names_no_key():
    school = load_resources()["bronze.student_enrollment"]
    assert keyed_rows([_quarantined(ENROLLED, "stage"), _quarantined(ENROLLED, "student_no")],
                      school) is None  # fmt: skip
    assert keyed_rows([_quarantined("S1,420102", "*")], school) is None
    # Problems naming no key, but the text no longer has the declared columns.
    assert keyed_rows([_quarantined("S1,420102,张三", "name")], school) is None
    assert keyed_rows([], school) == []

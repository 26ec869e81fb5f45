"""The derived libraries' pure transforms on tiny frames: every rule, hand-made inputs.

Credit grades, license statuses and the geospatial point test, each case built so that the
expected answer follows from ``schemas/libraries/*.yaml`` as written, not from the code.
"""

from __future__ import annotations

import datetime as dt

import pytest

from jobs import credit, geo, license

pytestmark = pytest.mark.integration

AS_OF = dt.date(2026, 6, 30)
D = dt.date.fromisoformat


def _records(spark, rows):
    schema = (
        "record_id string, record_kind string, subject_kind string, subject_id string, "
        "subject_name string, decision_date date, matter string, penalty_type string, "
        "heavy boolean, linked boolean"
    )
    return spark.createDataFrame(rows, schema)


def _lists(spark, rows):
    schema = (
        "record_id string, list_kind string, list_name string, subject_kind string, "
        "subject_id string, subject_name string, valid_from date, valid_to date, linked boolean"
    )
    return spark.createDataFrame(rows, schema)


def _penalty(rid, subject, day, heavy=False, linked=True):
    kind = "责令停产停业" if heavy else "罚款"
    return (rid, "penalty", "enterprise", subject, subject, D(day), "无证经营", kind, heavy, linked)


def _licence(rid, subject, day):
    return (rid, "license", "enterprise", subject, subject, D(day), "排污许可", None, False, True)


def _entry(rid, kind, subject, start, end=None, linked=True):
    name = "失信被执行人" if kind == "black" else "纳税信用A级纳税人"
    end_day = D(end) if end else None
    return (rid, kind, name, "enterprise", subject, subject, D(start), end_day, linked)


@pytest.fixture(scope="module")
def graded(spark):
    records = _records(spark, [
        _penalty("p1", "S-black", "2026-01-01"),
        _penalty("p2", "S-heavy", "2025-03-01", heavy=True),
        _penalty("p3", "S-twice", "2025-01-01"), _penalty("p4", "S-twice", "2026-02-01"),
        _penalty("p5", "S-once", "2025-12-01"),
        _penalty("p6", "S-red-and-fined", "2026-03-01"),
        _penalty("p7", "S-old", "2023-01-01", heavy=True),  # older than 36 months
        _licence("l1", "S-licensed", "2026-01-01"),
        _penalty("p8", "S-unknown", "2026-01-01", linked=False),
    ])  # fmt: skip
    lists = _lists(spark, [
        _entry("b1", "black", "S-black", "2025-06-01", "2028-06-01"),
        _entry("b2", "black", "S-black-ended", "2022-01-01", "2025-01-01"),
        _entry("r1", "red", "S-red", "2026-01-01", "2027-01-01"),
        _entry("r2", "red", "S-red-and-fined", "2026-01-01", "2027-01-01"),
    ])  # fmt: skip
    rows = credit.profiles(records, lists, credit.load_rules(), AS_OF).collect()
    return {r["subject_id"]: r for r in rows}


@pytest.mark.parametrize(
    ("subject", "grade", "rule", "evidence"),
    [
        ("S-black", "D", "D-black-list", {("black_lists", "b1")}),
        ("S-heavy", "C", "C-heavy-penalty", {("heavy_penalties", "p2")}),
        ("S-twice", "C", "C-repeat-penalties", {("penalties", "p3"), ("penalties", "p4")}),
        ("S-once", "B", "B-penalty", {("penalties", "p5")}),
        ("S-red", "A", "A-red-list", {("red_lists", "r1")}),
        ("S-red-and-fined", "B", "B-penalty", {("penalties", "p6")}),
        ("S-old", "B", "B-default", set()),
        ("S-licensed", "B", "B-default", set()),
        ("S-black-ended", "B", "B-default", set()),
    ],
)
def test_each_grade_follows_its_declared_rule_with_its_records(graded, subject, grade, rule,
                                                               evidence):  # fmt: skip
    profile = graded[subject]
    assert (profile["grade"], profile["grade_rule"]) == (grade, rule)
    assert {(e["measure"], e["record_id"]) for e in profile["explanation"]} == evidence
    assert profile["grade_reason_zh"]


def test_unlinked_subjects_get_no_profile(graded):
    assert "S-unknown" not in graded
    assert len(graded) == 9


def _licences(spark, rows):
    schema = (
        "license_no string, license_type string, license_name string, holder_kind string, "
        "holder_id string, holder_name string, issuer_name string, issuer_code string, "
        "issue_date date, expiry_date date, status string, update_time timestamp"
    )
    return spark.createDataFrame(rows, schema)


def _lic(no, kind, holder_kind, holder, expiry, status="有效"):
    updated = dt.datetime(2026, 1, 2, 9, 0)
    expires = D(expiry) if expiry else None
    return (no, kind, kind, holder_kind, holder, holder, "issuer", "code", D("2020-01-01"),
            expires, status, updated)  # fmt: skip


@pytest.fixture(scope="module")
def statuses(spark):
    persons = spark.createDataFrame(
        [("P-alive", None), ("P-dead", D("2026-03-01"))], "person_id string, death_date date"
    )
    entities = spark.createDataFrame(
        [("E-open", "存续", None), ("E-closed", "注销", D("2026-02-01"))],
        "credit_code string, status string, deregistered date",
    )
    rows = _licences(spark, [
        _lic("L-valid", "driving_license", "natural_person", "P-alive", "2030-01-01"),
        _lic("L-expired", "driving_license", "natural_person", "P-alive", "2026-01-01"),
        _lic("L-dead", "driving_license", "natural_person", "P-dead", "2030-01-01"),
        _lic("L-dead-degree", "degree_certificate", "natural_person", "P-dead", None),
        _lic("L-closed", "business_license", "enterprise", "E-closed", None),
        _lic("L-revoked", "business_license", "enterprise", "E-open", None, "吊销"),
        _lic("L-cancelled", "food_business_license", "enterprise", "E-open", "2030-01-01", "注销"),
        _lic("L-nobody", "business_license", "enterprise", "E-missing", None),
    ])  # fmt: skip
    rules = license.load_rules()
    out = license.licenses(rows, license.holders(persons, entities), rules, AS_OF)
    conflicts = license.conflicts(out, rules).collect()
    return {r["license_no"]: r for r in out.collect()}, {r["license_no"]: r for r in conflicts}


@pytest.mark.parametrize(
    ("number", "status", "ended_on", "conflict"),
    [
        ("L-valid", "valid", None, None),
        ("L-expired", "expired", D("2026-01-01"), "expired_license_still_valid"),
        ("L-dead", "holder_deceased", D("2026-03-01"), "deceased_still_licensed"),
        ("L-dead-degree", "valid", None, None),  # a degree outlives its holder
        ("L-closed", "holder_deregistered", D("2026-02-01"), "deregistered_still_licensed"),
        ("L-revoked", "revoked", D("2026-01-02"), None),
        ("L-cancelled", "cancelled", D("2026-01-02"), None),
        ("L-nobody", "valid", None, None),
    ],
)
def test_license_status_follows_the_declared_rules(statuses, number, status, ended_on, conflict):
    rows, conflicts = statuses
    assert rows[number]["status"] == status
    assert rows[number]["ended_on"] == ended_on
    assert (conflicts[number]["kind"] if number in conflicts else None) == conflict
    assert rows[number]["holder_linked"] is (number != "L-nobody")


def test_valid_for_holder_keeps_each_issue_of_a_license(spark):
    history = spark.createDataFrame(
        [
            # issued 2014, renewed 2020 (same number), cancelled at death in 2026
            ("P1", "natural_person", "L1", "driving_license", "驾驶证", D("2014-01-01"),
             D("2020-01-01"), None),
            ("P1", "natural_person", "L1", "driving_license", "驾驶证", D("2020-01-01"),
             D("2026-01-01"), None),
            ("P1", "natural_person", "L1", "driving_license", "驾驶证", D("2020-01-01"),
             D("2026-01-01"), D("2025-05-05")),
        ],
        "holder_id string, holder_kind string, license_no string, license_type string, "
        "license_name string, issue_date date, expiry_date date, ended_on date",
    )  # fmt: skip
    intervals = sorted(
        (r["valid_from"], r["valid_until"]) for r in license.valid_for_holder(history).collect()
    )
    assert intervals == [(D("2014-01-01"), D("2020-01-01")), (D("2020-01-01"), D("2025-05-05"))]


def test_points_are_tested_against_their_division(spark):
    square = "POLYGON ((0 0, 0 1, 1 1, 1 0, 0 0))"
    other = "POLYGON ((1 0, 1 1, 2 1, 2 0, 1 0))"
    divisions = spark.createDataFrame(
        [("420101", "A", "county", "420100", True, D("2014-01-01"), None, True, "420101",
          square),
         ("429004", "B", "prefecture", "420000", True, D("2014-01-01"), None, True, "429004",
          other),
         ("420199", "Old", "county", "420100", True, D("2000-01-01"), D("2014-01-01"), False,
          "420101", None)],
        "division_code string, name string, level string, parent_code string, "
        "county_level boolean, valid_from date, valid_to date, current boolean, "
        "current_code string, boundary_wkt string",
    )  # fmt: skip
    addresses = spark.createDataFrame(
        [("a1", "A路1号", "420101", None, "A路", "1号", "0.5", "0.5"),
         ("a2", "A路2号", "420101", None, "A路", "2号", "1.5", "0.5"),
         ("a3", "旧路3号", "420199", None, "旧路", "3号", "0.2", "0.2"),
         ("a4", "外路4号", "429004", None, "外路", "4号", "5", "5")],
        "address_id string, full_address string, division_code string, street string, "
        "road string, house_number string, longitude string, latitude string",
    )  # fmt: skip
    rows = {r["address_id"]: r for r in geo.standard_addresses(addresses, divisions).collect()}
    assert (rows["a1"]["inside_division"], rows["a1"]["containing_division"]) == (True, "420101")
    # 仙桃 (429004) is county level though GB/T 2260 files it beside the prefectures.
    assert (rows["a2"]["inside_division"], rows["a2"]["containing_division"]) == (False, "429004")
    # A retired code is tested against the division that replaced it.
    assert rows["a3"]["current_division_code"] == "420101" and rows["a3"]["inside_division"]
    assert (rows["a4"]["inside_division"], rows["a4"]["containing_division"]) == (False, None)
    conflicts = {r["subject"] for r in geo.point_conflicts(
        geo.standard_addresses(addresses, divisions)).collect()}  # fmt: skip
    assert conflicts == {"a2", "a4"}
    assert rows["a1"]["point_wkt"] == "POINT (0.5 0.5)"


def test_pandas_results_come_back_with_nulls_not_nans(spark):
    import pandas as pd

    from jobs.derived import from_pandas

    frame = pd.DataFrame(
        {"a": ["x", None], "n": [1, 2], "p": [0.5, float("nan")], "extra": ["dropped", "too"]}
    )
    rows = from_pandas(spark, frame, "a string, n long, p double").collect()
    assert [tuple(r) for r in rows] == [("x", 1, 0.5), (None, 2, None)]

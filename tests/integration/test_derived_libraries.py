"""Geospatial, credit, e-license libraries and shared materials, scored against the truth.

Same province and builds as the population and legal-person tests (``libraries_built``).
Expected values come from the generator's ``_truth/`` files, from the bronze rows as
delivered (re-derived here in plain Python from the rules as written), and from GB/T 2260's
change list, never from the tables under test.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import pytest

from datong import tables
from datong.query import run
from jobs import credit, license
from tests.integration.conftest import BATCHES, as_of, truth_rows

pytestmark = pytest.mark.integration
LAST = BATCHES[-1]


def _bronze(spark, settings, name: str) -> list[dict]:
    return [r.asDict() for r in tables.read(spark, settings, name).collect()]


def _latest(rows: list[dict], *key: str) -> list[dict]:
    """Latest version per key (later batch, then later row): what silver must hold."""
    latest: dict[tuple, dict] = {}
    for row in sorted(rows, key=lambda r: (r["_batch_id"], r["_row_number"])):
        latest[tuple(row[k] for k in key)] = row
    return list(latest.values())


# ---- geospatial -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["person", "legal_person"])
def test_addresses_match_their_true_standard_address(library_landing, libraries_built, kind):
    _, snapshots = libraries_built
    truth_file, key = ("person.csv", "person_id") if kind == "person" else (
        "legal_person.csv", "credit_code")  # fmt: skip
    truth = {r[key]: r["address_id"] for r in truth_rows(library_landing, LAST, truth_file)}
    matches = {sid: row for (k, sid), row in snapshots[LAST]["address_match"].items() if k == kind}
    scored = [sid for sid in matches if sid in truth]
    assert len(scored) >= 0.99 * len(matches)
    correct = [sid for sid in scored if matches[sid]["address_id"] == truth[sid]]
    wrong = [sid for sid in scored if matches[sid]["address_id"] not in ("", truth[sid])]
    unmatched = [sid for sid in scored if matches[sid]["address_id"] == ""]
    assert len(correct) / len(scored) >= 0.98, (len(correct), len(scored))
    assert len(wrong) <= 0.002 * len(scored), [matches[s]["address"] for s in wrong[:5]]
    for sid in unmatched:  # the remainder is listed, each with its reason
        assert matches[sid]["match_reason"], matches[sid]


def test_unmatched_addresses_are_listed(libraries_built, spark):
    settings, snapshots = libraries_built
    listed = {(r["subject_kind"], r["subject_id"])
              for r in tables.read(spark, settings, "geo.unmatched_address").collect()}  # fmt: skip
    expected = {k for k, row in snapshots[LAST]["address_match"].items() if not row["address_id"]}
    assert listed == expected


def test_points_outside_their_division_are_conflicts(library_landing, libraries_built):
    _, snapshots = libraries_built
    truth = set()
    for batch in BATCHES:  # standard addresses come whole: the last batch's truth stands
        lines = (library_landing / "_truth" / batch / "conflicts.jsonl").read_text().splitlines()
        truth = {item["subject"] for item in map(json.loads, lines)
                 if item["kind"] == "point_outside_division"}  # fmt: skip
    assert truth, "no point moved out of its division: the test would prove nothing"
    found = {subject for (kind, subject, k) in snapshots[LAST]["geo_conflict"]
             if k == "point_outside_division"}  # fmt: skip
    assert found == truth


def test_retired_division_codes_map_to_current_ones(libraries_built):
    settings, _ = libraries_built
    # GB/T 2260 changes: 郧县 became 郧阳区 (2014), 京山县 京山市 (2018), 监利县 监利市 (2020).
    rows = run(settings, "SELECT retired_code, current_code, change_date "
                         "FROM lake.geo.division_code_map ORDER BY retired_code").rows  # fmt: skip
    assert rows == [("420321", "420304", dt.date(2014, 12, 31)),
                    ("420821", "420882", dt.date(2018, 12, 31)),
                    ("421023", "421088", dt.date(2020, 12, 31))]  # fmt: skip
    retired = run(settings, "SELECT current_code, valid_to IS NOT NULL FROM lake.geo.division "
                            "WHERE division_code = '420321'").rows  # fmt: skip
    assert retired == [("420304", True)]


def test_trino_tests_points_in_polygons_with_its_geospatial_functions(library_landing,
                                                                      libraries_built):  # fmt: skip
    settings, _ = libraries_built
    lines = (library_landing / "_truth" / LAST / "conflicts.jsonl").read_text().splitlines()
    moved = {i["subject"] for i in map(json.loads, lines) if i["kind"] == "point_outside_division"}
    outside = run(settings, """
        SELECT a.address_id FROM lake.geo.standard_address a
        JOIN lake.geo.division d ON d.division_code = a.current_division_code AND d.current
        WHERE NOT ST_Contains(ST_GeometryFromText(d.boundary_wkt),
                              ST_Point(a.longitude, a.latitude))
    """).rows  # fmt: skip
    assert {r[0] for r in outside} == moved


def test_every_subject_is_placed_in_a_county(libraries_built):
    settings, snapshots = libraries_built
    placed = Counter(
        (row["division_code"], kind)
        for (kind, _), row in snapshots[LAST]["address_match"].items()
        if row["division_code"]
    )
    rows = run(settings, "SELECT division_code, persons, legal_persons "
                         "FROM lake.geo.county_summary").rows  # fmt: skip
    assert {(c, "person"): p for c, p, _ in rows if p} == {
        k: v for k, v in placed.items() if k[1] == "person"
    }
    assert sum(p for _, p, _ in rows) > 0 and sum(e for _, _, e in rows) > 0


# ---- credit -----------------------------------------------------------------------------


def _expected_grades(spark, settings, day: dt.date, persons: set[str], entities: set[str]):
    """Grades re-derived in Python from the delivered records and credit.yaml's rules."""
    heavy = set(credit.load_rules().heavy_penalty_types)
    linked = persons | entities
    penalties = _latest(_bronze(spark, settings, "bronze.administrative_penalty"),
                        "authority_code", "decision_no")  # fmt: skip
    licences = _latest(_bronze(spark, settings, "bronze.administrative_license"),
                       "authority_code", "decision_no")  # fmt: skip
    entries = []
    for kind, name in (("red", "bronze.credit_red_list"), ("black", "bronze.credit_black_list")):
        for row in _latest(_bronze(spark, settings, name), "list_name", "subject_id",
                           "included_date"):  # fmt: skip
            entries.append((kind, row))
    subjects = {r["subject_id"] for r in penalties + licences if r["subject_id"] in linked}
    subjects |= {r["subject_id"] for _, r in entries if r["subject_id"] in linked}
    three_years_ago = day.replace(year=day.year - 3)
    grades = {}
    for subject in subjects:
        recent = [
            p for p in penalties
            if p["subject_id"] == subject and p["decision_date"] > three_years_ago
        ]  # fmt: skip

        def active(kind: str, subject: str = subject) -> list[dict]:
            return [r for k, r in entries if k == kind and r["subject_id"] == subject
                    and r["included_date"] <= day
                    and (min(filter(None, [r["valid_to"], r["removed_date"]]), default=None)
                         or dt.date.max) > day]  # fmt: skip

        if active("black"):
            grades[subject] = "D"
        elif [p for p in recent if p["penalty_type"] in heavy] or len(recent) >= 2:
            grades[subject] = "C"
        elif len(recent) == 1:
            grades[subject] = "B"
        elif active("red"):
            grades[subject] = "A"
        else:
            grades[subject] = "B"
    return grades


def test_every_credit_grade_equals_the_declared_rules(library_landing, libraries_built, spark):
    settings, snapshots = libraries_built
    persons = {r["person_id"] for r in truth_rows(library_landing, LAST, "person.csv")}
    entities = {r["credit_code"] for r in truth_rows(library_landing, LAST, "legal_person.csv")}
    expected = _expected_grades(spark, settings, as_of(LAST), persons, entities)
    profiles = snapshots[LAST]["credit_profile"]
    assert {s: p["grade"] for s, p in profiles.items()} == expected
    assert len(set(expected.values())) >= 2, "one grade only: the test would prove little"
    for profile in profiles.values():
        assert profile["grade_rule"] and profile["grade_reason_zh"]
        if profile["grade"] in ("C", "D", "A"):  # a grade off the default names its records
            assert profile["explanation"] != "[]", profile


def test_credit_records_of_unknown_subjects_are_listed(library_landing, libraries_built, spark):
    settings, snapshots = libraries_built
    dangling = set()
    for batch in BATCHES:
        for line in (library_landing / "_truth" / batch / "errors.jsonl").read_text().splitlines():
            item = json.loads(line)
            if item["kind"] == "dangling_reference" and "administrative" in item["resource"]:
                dangling.add(item["delivered"])
    assert dangling, "no dangling reference injected: the test would prove nothing"
    listed = {row["subject"] for row in snapshots[LAST]["credit_unlinked"].values()}
    assert listed == dangling
    # Every record is in the library, linked or listed: nothing lost.
    records = tables.read(spark, settings, "credit.record")
    assert records.where("NOT linked").count() == sum(
        1 for key in snapshots[LAST]["credit_unlinked"] if key[0] == "credit.record"
    )


def test_penalties_leave_the_public_view_when_their_publicity_ends(libraries_built, spark):
    settings, _ = libraries_built
    today = dt.date.today()  # the view reads Trino's current_date
    penalties = _latest(_bronze(spark, settings, "bronze.administrative_penalty"),
                        "authority_code", "decision_no")  # fmt: skip
    public = {f"{p['authority_code']}/{p['decision_no']}" for p in penalties
              if p["publicity_end_date"] >= today}  # fmt: skip
    rows = run(settings, "SELECT record_id, subject_kind, subject_id "
                         "FROM lake.credit.penalty_public").rows  # fmt: skip
    assert {r[0] for r in rows} == public
    assert len(public) < len(penalties), "no penalty past its publicity: proves nothing"
    for _, kind, subject_id in rows:
        if kind == "natural_person":
            assert "********" in subject_id  # a person's ID number is never published whole


# ---- e-license --------------------------------------------------------------------------


def _expected_status(row: dict, persons: dict, entities: dict, day: dt.date) -> str:
    rules = license.load_rules()
    person = persons.get(row["holder_id"]) if row["holder_kind"] == "natural_person" else None
    entity = entities.get(row["holder_id"]) if row["holder_kind"] != "natural_person" else None
    death = person["death_date"] if person else ""
    if row["status"] == "吊销":
        return "revoked"
    if row["license_type"] in rules.ends_on_death and death and death <= day.isoformat():
        return "holder_deceased"
    if (row["license_type"] in rules.ends_on_deregistration and entity
            and entity["status"] in ("注销", "吊销")):  # fmt: skip
        return "holder_deregistered"
    if row["status"] == "注销":
        return "cancelled"
    if row["status"] == "过期" or (row["expiry_date"] and row["expiry_date"] < day):
        return "expired"
    return "valid"


def test_license_status_is_right_for_every_license(library_landing, libraries_built, spark):
    settings, snapshots = libraries_built
    persons = {r["person_id"]: r for r in truth_rows(library_landing, LAST, "person.csv")}
    entities = {r["credit_code"]: r for r in truth_rows(library_landing, LAST, "legal_person.csv")}
    delivered = _latest(_bronze(spark, settings, "bronze.e_license"), "license_no")
    got = snapshots[LAST]["license"]
    assert set(got) == {r["license_no"] for r in delivered}  # every license accounted for
    expected = {r["license_no"]: _expected_status(r, persons, entities, as_of(LAST))
                for r in delivered}  # fmt: skip
    right = [n for n in expected if got[n]["status"] == expected[n]]
    assert len(right) / len(expected) >= 0.999, Counter(
        (expected[n], got[n]["status"]) for n in expected if n not in right
    )
    assert {"valid", "expired", "holder_deceased"} <= set(expected.values())


def test_license_conflicts_match_the_truth(library_landing, libraries_built):
    _, snapshots = libraries_built
    kinds = {"expired_license_still_valid", "deregistered_still_licensed"}
    truth = set()
    for batch in BATCHES:  # incremental deliveries: earlier conflicts stand
        lines = (library_landing / "_truth" / batch / "conflicts.jsonl").read_text().splitlines()
        truth |= {(i["subject"], i["kind"]) for i in map(json.loads, lines) if i["kind"] in kinds}
    assert truth, "no license conflict injected: the test would prove nothing"
    found = {(row["subject"], row["kind"]) for row in snapshots[LAST]["license_conflict"].values()}
    assert found == truth


def test_valid_licenses_of_a_holder_on_a_date_through_trino(library_landing, libraries_built,
                                                            spark):  # fmt: skip
    settings, snapshots = libraries_built
    persons = {r["person_id"]: r for r in truth_rows(library_landing, LAST, "person.csv")}
    entities = {r["credit_code"]: r for r in truth_rows(library_landing, LAST, "legal_person.csv")}
    delivered = _latest(_bronze(spark, settings, "bronze.e_license"), "license_no")
    day = as_of(LAST)
    by_holder: dict[str, set[str]] = {}
    for row in delivered:
        if _expected_status(row, persons, entities, day) == "valid" and row["issue_date"] <= day:
            by_holder.setdefault(row["holder_id"], set()).add(row["license_no"])
    holders = sorted(h for h in by_holder if h in persons or h in entities)[:15]
    holders += [r["holder_id"] for r in delivered
                if _expected_status(r, persons, entities, day) != "valid"][:5]  # fmt: skip
    for holder in holders:
        rows = run(settings, license.valid_on_sql(holder, day)).rows
        assert {r[0] for r in rows} == by_holder.get(holder, set()), holder


# ---- shared materials -------------------------------------------------------------------


def test_materials_are_fetched_instead_of_asked_for(library_landing, libraries_built):
    settings, snapshots = libraries_built
    persons = {r["person_id"]: r for r in truth_rows(library_landing, LAST, "person.csv")}
    living = [p for p in persons.values() if not p["death_date"]]
    heads = {p["household_id"]: p for p in living if p["relation_to_head"] == "02"}
    member = next(p for p in living if p["relation_to_head"] == "20" and p["household_id"] in heads)
    page = run(settings, "SELECT name, household_id, head_name FROM "
               f"lake.materials.household_register_page WHERE person_id = '{member['person_id']}'"
               ).rows  # fmt: skip
    assert page == [(member["name"], member["household_id"], heads[member["household_id"]]["name"])]
    certified = {
        row["holder_id"]
        for row in snapshots[LAST]["license"].values()
        if row["license_type"] == "marriage_certificate" and row["status"] == "valid"
    }
    married = next(p for p in living if p["marital_status"] == "20"
                   and p["spouse_id"] in persons and p["person_id"] in certified)  # fmt: skip
    certificate = run(settings, "SELECT spouse_id, spouse_name FROM "
                      f"lake.materials.marriage_certificate WHERE person_id = "
                      f"'{married['person_id']}'").rows  # fmt: skip
    assert certificate == [(married["spouse_id"], persons[married["spouse_id"]]["name"])]
    entities = truth_rows(library_landing, LAST, "legal_person.csv")
    operating = next(e for e in entities if e["authority"] == "9" and e["status"] == "存续")
    licence = run(settings, "SELECT name FROM lake.materials.business_licence "
                  f"WHERE credit_code = '{operating['credit_code']}'").rows  # fmt: skip
    assert licence == [(operating["name"],)]
    closed = [e["credit_code"] for e in entities if e["status"] != "存续"]
    assert closed
    codes = ", ".join(f"'{c}'" for c in closed)
    assert run(settings, "SELECT count(*) FROM lake.materials.business_licence "
               f"WHERE credit_code IN ({codes})").rows == [(0,)]  # fmt: skip
    births = run(settings, "SELECT count(*) FROM lake.materials.birth_certificate").rows
    assert births[0][0] > 0


# ---- the map ----------------------------------------------------------------------------


def test_report_geo_draws_the_counties_map(libraries_built, tmp_path):
    from PIL import Image

    from datong.reference import load_divisions
    from tests.integration.test_cli import cli_env, datong

    settings, snapshots = libraries_built
    target = tmp_path / "counties.png"
    result = datong("report", "geo", "--out", str(target), env=cli_env(settings))
    assert result.returncode == 0, result.stderr
    divisions = [d for d in load_divisions() if not d.valid_to]
    parents = {d.parent_code for d in divisions}
    # County level: counties, and the prefecture-level units with no county under them.
    current_counties = [d for d in divisions if d.level == "county"
                        or (d.level == "prefecture" and d.code not in parents)]  # fmt: skip
    assert len(current_counties) == 103  # Hubei's county-level units (GB/T 2260)
    persons = sum(1 for (kind, _), row in snapshots[LAST]["address_match"].items()
                  if kind == "person" and row["division_code"])  # fmt: skip
    assert f"{len(current_counties)} counties, {persons:,} persons" in result.stdout
    image = Image.open(target)
    assert image.format == "PNG" and image.size == (1400, 650)
    # A choropleth, not a blank canvas: many distinct colours.
    assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 50

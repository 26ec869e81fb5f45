"""Bronze rules on tiny frames: each normalisation and each rule, with known answers."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from datong.contracts import load_resources
from jobs import rules

pytestmark = pytest.mark.integration

REGISTER = load_resources()["bronze.household_register"]
ENTERPRISE = load_resources()["bronze.enterprise_registration"]


def _only(resource, *names):
    return SimpleNamespace(elements=[e for e in resource.elements if e.name in names])


def _run(spark, resource, rows):
    names = [e.name for e in resource.elements]
    staged = [(i + 1, "raw", len(values), *values) for i, values in enumerate(rows)]
    schema = "_row_number long, _raw string, _field_count int, " + ", ".join(
        f"{n} string" for n in names
    )
    return (
        rules.transform(spark.createDataFrame(staged, schema), resource)
        .orderBy("_row_number")
        .collect()
    )


def test_citizen_ids_are_normalised_then_checked(spark):
    resource = _only(REGISTER, "person_id")
    out = _run(spark, resource, [
        ["360426910101007"],       # stdnum's 15-digit vector → 360426199101010071
        ["３６０４２６１９９１０１０１００７１"],  # full-width digits
        ["  11010519491231002x\u3000"],  # GB 11643's example, blanks and a lower-case x
        ["11010519491231002Y"],    # wrong check character
        ["11010519491331002X"],    # month 13
    ])  # fmt: skip
    assert [r["person_id"] for r in out[:3]] == [
        "360426199101010071", "360426199101010071", "11010519491231002X",
    ]  # fmt: skip
    assert [r[rules.RULES] for r in out] == [
        [], [], [], ["INGEST-007:person_id"], ["INGEST-007:person_id"],
    ]  # fmt: skip


def test_dates_in_common_spellings_parse_and_nonsense_is_rejected(spark):
    resource = _only(REGISTER, "birth_date")
    spellings = ["2020-01-31", "2020/01/31", "20200131", "2020年01月31日", "2020.01.31"]
    out = _run(spark, resource, [[s] for s in [*spellings, "31/01/2020", ""]])
    assert [r["birth_date"] for r in out[:5]] == [dt.date(2020, 1, 31)] * 5
    assert out[5][rules.RULES] == ["INGEST-003:birth_date"]
    assert out[6][rules.RULES] == ["INGEST-002:birth_date"]


def test_dates_that_do_not_exist_are_rejected_in_every_spelling(spark):
    resource = _only(REGISTER, "birth_date")
    out = _run(spark, resource, [["2021-02-29"], ["2021/02/29"], ["2020-13-01"], ["2020-1-31"],
                                 ["2020-01-31 08:00:00"], ["2020-02-29"]])  # fmt: skip
    assert [r[rules.RULES] for r in out[:5]] == [["INGEST-003:birth_date"]] * 5
    assert out[5]["birth_date"] == dt.date(2020, 2, 29)


def test_timestamps_in_each_spelling_parse_and_impossible_ones_are_rejected(spark):
    resource = _only(REGISTER, "update_time")
    out = _run(spark, resource, [
        ["2023-05-06 07:08:09"], ["2023/05/06 07:08:09"], ["2023-05-06T07:08:09"],
        ["２０２３-05-06 07:08:09"],  # full-width digits
        ["2023-02-29 07:08:09"], ["2023-05-06 24:08:09"], ["2023-05-06 07:08"],
        ["2023-05-06 07:08:09.5"], ["2023-05-06"],
    ])  # fmt: skip
    # Read in the session's zone (Asia/Shanghai); collect() gives the local wall time.
    shanghai = dt.datetime(2023, 5, 6, 7, 8, 9, tzinfo=ZoneInfo("Asia/Shanghai"))
    local = shanghai.astimezone().replace(tzinfo=None)
    assert [r["update_time"] for r in out[:4]] == [local] * 4
    assert [r[rules.RULES] for r in out[:4]] == [[]] * 4
    assert [r[rules.RULES] for r in out[4:]] == [["INGEST-004:update_time"]] * 5


def test_text_is_trimmed_and_only_full_width_letters_and_digits_are_narrowed(spark):
    resource = _only(REGISTER, "name", "address")
    out = _run(spark, resource, [
        ["\u3000张三 ", "ＡＢ栋１２号（东）"],
        ["李四", "  "],
    ])  # fmt: skip
    assert (out[0]["name"], out[0]["address"]) == ("张三", "AB栋12号（东）")
    assert (out[1]["name"], out[1]["address"]) == ("李四", None)


def test_credit_codes_code_tables_lengths_and_field_counts(spark):
    resource = _only(ENTERPRISE, "credit_code", "entity_type", "legal_representative_name")
    out = _run(spark, resource, [
        ["91110000802100433B", "individual_business", "张三"],
        ["91110000802100433C", "individual_business", "张三"],
        ["91110000802100433B", "no_such_type", "张三"],
        ["91110000802100433B", "individual_business", "张" * 51],
    ])  # fmt: skip
    assert [r[rules.RULES] for r in out] == [
        [],
        ["INGEST-008:credit_code"],
        ["INGEST-009:entity_type", "INGEST-010:entity_type"],
        ["INGEST-011:legal_representative_name"],
    ]


def test_a_register_refuses_codes_of_another_registering_authority(spark):
    from stdnum.cn import uscc

    resource = _only(ENTERPRISE, "credit_code")
    institution = "12110000802100433" + uscc.calc_check_digit("12110000802100433")
    assert uscc.is_valid(institution)
    out = _run(spark, resource, [["91110000802100433B"], [institution]])
    assert [r[rules.RULES] for r in out] == [[], ["INGEST-013:credit_code"]]


def test_wrong_field_count_is_one_rule_not_many(spark):
    resource = _only(REGISTER, "person_id", "birth_date")
    staged = spark.createDataFrame(
        [(1, "a,b,c", 3, None, None)],
        "_row_number long, _raw string, _field_count int, person_id string, birth_date string",
    )
    [row] = rules.transform(staged, resource).collect()
    assert row[rules.RULES] == ["INGEST-001:*"]

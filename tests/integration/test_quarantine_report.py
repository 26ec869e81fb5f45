"""Quarantine reports per department, scored against the generator's ground truth.

The unit tests (no marker) check the pure renderers; the integration tests ingest a small
generated province with Spark and check the reports it gives.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
from collections import Counter
from pathlib import Path

import pytest

from datong.contracts import load_departments, load_resources
from datong.settings import Settings
from jobs.quarantine_report import (
    BOM,
    CSV_COLUMNS,
    department_summary,
    excel_safe,
    render_department_page,
    render_index,
    write_csv,
    write_reports,
)
from jobs.rules import rule_texts

GENERATED = dt.datetime(2025, 3, 1, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
SCRIPT = "<script>alert(1)</script>"
HEADERS = {key: header for key, header in CSV_COLUMNS}


def _csv_rows(text: str) -> list[dict[str, str]]:
    """Rows of a report CSV (text after the BOM) by CSV_COLUMNS key."""
    reader = csv.reader(io.StringIO(text, newline=""))
    assert next(reader) == [header for _, header in CSV_COLUMNS]
    return [dict(zip(HEADERS, line, strict=True)) for line in reader]


# -- pure renderers (no Spark) ----------------------------------------------------------------


def _report() -> dict:
    return {
        "code": "public_security",
        "name_zh": "湖北省公安厅",
        "org_code": "HBGA",
        "batch_id": "batch-0001",
        "resources": [
            {
                "resource": "bronze.household_register",
                "title_zh": "户籍人口信息",
                "files": [
                    {
                        "file": "public_security/household_register/batch-0001/a.csv",
                        "batch_id": "batch-0001",
                        "status": "succeeded",
                        "rows_read": 1200,
                        "accepted": 1198,
                        "quarantined": 2,
                        "error": None,
                    },
                    {
                        "file": "public_security/household_register/batch-0001/b<1>.csv",
                        "batch_id": "batch-0001",
                        "status": "failed",
                        "rows_read": 0,
                        "accepted": 0,
                        "quarantined": 0,
                        "error": "b<1>.csv: not valid UTF-8 / 文件编码与声明的 UTF-8 不符",
                    },
                ],
                "rules": [
                    {
                        "rule_id": "INGEST-007",
                        "field": "person_id",
                        "field_zh": "公民身份号码",
                        "count": 1,
                        "reason_zh": "公民身份号码不符合 GB 11643",
                        "reason_en": "not a valid citizen ID number",
                    },
                    {
                        "rule_id": "INGEST-001",
                        "field": "*",
                        "field_zh": None,
                        "count": 1,
                        "reason_zh": "记录的字段个数与资源目录声明不一致",
                        "reason_en": "the record does not have the declared number of fields",
                    },
                ],
                "rejected": 2,
                "sample": [
                    {
                        "file": "public_security/household_register/batch-0001/a.csv",
                        "batch_id": "batch-0001",
                        "row_number": 7,
                        "problems": [{"rule_id": "INGEST-001", "field": "*"}],
                        "raw": f'42010219900101123X,张三,"{SCRIPT} & more"',
                    },
                ],
            }
        ],
    }


def test_csv_has_bom_header_and_one_line_per_row():
    rows = [
        {
            "department": "health",
            "row_number": 3,
            "rule_id": "INGEST-003",
            "field": "birth_date",
            "reason_zh": "不是有效的日期",
            "reason_en": "not a valid date",
            "raw": 'a,"multi\nline",张三',
        },
        {"department": "health", "row_number": 9, "raw": '=HYPERLINK("x")'},
    ]
    handle = io.StringIO(newline="")
    assert write_csv(handle, rows) == 2
    text = handle.getvalue()
    assert text.startswith(BOM) and text.count(BOM) == 1
    parsed = _csv_rows(text[len(BOM) :])
    assert [row["row_number"] for row in parsed] == ["3", "9"]
    assert parsed[0]["raw"] == 'a,"multi\nline",张三'  # quoting keeps the raw record whole
    assert parsed[0]["reason_zh"] == "不是有效的日期"
    assert parsed[1]["raw"] == '\'=HYPERLINK("x")'  # not a formula in Excel
    assert parsed[1]["field"] == ""


def test_excel_safe_only_guards_formula_starts():
    assert excel_safe("420102") == "420102"
    assert excel_safe(None) == ""
    assert excel_safe(7) == "7"
    assert excel_safe("+86") == "'+86"
    assert excel_safe("@SUM(A1)") == "'@SUM(A1)"


def test_department_page_escapes_and_is_self_contained():
    page = render_department_page(_report(), GENERATED)
    assert page.startswith("<!DOCTYPE html>")
    assert '<html lang="zh-CN">' in page and '<meta charset="utf-8">' in page
    assert "湖北省公安厅" in page and "2025-03-01 09:30:00+08:00" in page
    # Raw text, file names and errors are escaped: no markup from the department's data.
    assert SCRIPT not in page and "b<1>" not in page
    assert html.escape(SCRIPT) in page and "&amp; more" in page
    assert html.escape("b<1>.csv: not valid UTF-8 / 文件编码与声明的 UTF-8 不符") in page
    # No external assets: only the relative link to the department's own CSV.
    for external in ("<script", "<link", "src=", "http://", "https://", "@import"):
        assert external not in page
    assert 'href="quarantine.csv"' in page
    # Ledger counts, counts per rule with both reasons.
    assert "1,200" in page and "1,198" in page
    assert "公民身份号码不符合 GB 11643" in page and "not a valid citizen ID number" in page
    assert "person_id（公民身份号码）" in page and "整条记录 whole record" in page
    assert "读取失败 failed" in page


def test_summary_and_index_link_every_department():
    summary = department_summary(_report())
    assert summary == {
        "code": "public_security",
        "name_zh": "湖北省公安厅",
        "files": 2,
        "failed": 1,
        "rejected": 2,
        "problems": 2,
    }
    page = render_index([summary], GENERATED, "batch-0001", [{"code": "tax", "name_zh": "税务"}])
    assert '<html lang="zh-CN">' in page and '<meta charset="utf-8">' in page
    assert 'href="public_security/index.html"' in page
    assert 'href="public_security/quarantine.csv"' in page
    assert "batch-0001" in page and "税务" in page
    empty = render_index([], GENERATED)
    assert "Nothing to send back" in empty and "全部批次 all batches" in empty


# -- on an ingested province -------------------------------------------------------------------

# CSV GB18030 with row errors; JSON Lines with wrong credit-code check characters; and the
# seed-5 file the generator truncates, which fails as a whole.
SOURCES = [
    "public_security.household_register",
    "data_bureau.e_license",
    "market_regulation.enterprise_registration",
]
FAILED_SOURCE = "market_regulation.enterprise_registration"


@pytest.fixture(scope="module")
def province(tmp_path_factory) -> tuple[Path, list[dict], tuple[str, int]]:
    from synthetic.errors import ErrorRates
    from synthetic.generate import Options, generate

    out = tmp_path_factory.mktemp("report-landing")
    rates = ErrorRates.load(scale=3.0)
    generate(Options(persons=600, seed=5, out=out, rates=rates, households_per_chunk=500))
    truth = [
        json.loads(line)
        for line in (out / "_truth" / "batch-0001" / "errors.jsonl").read_text().splitlines()
    ]
    # A record with markup in it, quarantined for a field too many (INGEST-001).
    relative = "public_security/household_register/batch-0001/household_register.csv"
    path = out / relative
    text = path.read_text(encoding="gb18030")
    records = list(csv.reader(io.StringIO(text, newline="")))
    extra = io.StringIO(newline="")
    csv.writer(extra, lineterminator="\n").writerow([*records[-1], SCRIPT])
    path.write_text(text + extra.getvalue(), encoding="gb18030", newline="")
    return out, truth, (relative, len(records))  # header + data records = new record's number


@pytest.fixture(scope="module")
def reports(province, tmp_path_factory, spark):
    from jobs.ingest import run_source

    out, _, _ = province
    settings = Settings(state_dir=tmp_path_factory.mktemp("report-state"), spark_master="local[2]")
    results = {s: run_source(s, out, settings, spark, validate=False) for s in SOURCES}
    target = tmp_path_factory.mktemp("reports")
    folders = write_reports(spark, settings, target)
    return settings, results, target, folders


def _expected_lines(truth: list[dict], succeeded: set[str]) -> Counter:
    resources = load_resources()
    expected: Counter = Counter()
    for error in truth:
        if error["expected"] != "quarantine" or error["file"] not in succeeded:
            continue
        if error["kind"] == "invalid_check_character":
            element = resources[error["resource"]].element(error["field"])
            rule = "INGEST-007" if element.standard == "GB 11643" else "INGEST-008"
        else:
            assert error["kind"] == "column_count", error
            rule = "INGEST-001"
        expected[(error["file"], error["record"], rule)] += 1
    return expected


@pytest.mark.integration
def test_every_department_with_problems_gets_a_report(province, reports):
    _, truth, _ = province
    _, results, target, folders = reports
    assert set(folders) == {"public_security", "data_bureau", "market_regulation"}
    assert [r.status for r in results[FAILED_SOURCE]] == ["failed"]
    index = (target / "index.html").read_text(encoding="utf-8")
    for code, folder in folders.items():
        assert folder == target / code
        assert (folder / "quarantine.csv").is_file() and (folder / "index.html").is_file()
        assert f'href="{code}/index.html"' in index
        assert load_departments()[code].name_zh in index


@pytest.mark.integration
def test_csv_lists_exactly_the_rows_the_truth_expects(province, reports):
    _, truth, (script_file, script_record) = province
    _, results, _, folders = reports
    succeeded = {r.file for rs in results.values() for r in rs if r.status == "succeeded"}
    expected = _expected_lines(truth, succeeded)
    expected[(script_file, script_record, "INGEST-001")] += 1
    assert {rule for _, _, rule in expected} == {"INGEST-001", "INGEST-007", "INGEST-008"}
    texts = rule_texts()
    departments = load_departments()
    got: Counter = Counter()
    for code, folder in folders.items():
        data = (folder / "quarantine.csv").read_bytes()
        assert data.startswith(b"\xef\xbb\xbf"), "Excel needs the UTF-8 BOM"
        for row in _csv_rows(data.decode("utf-8")[len(BOM) :]):
            assert row["department"] == code
            assert row["department_zh"] == departments[code].name_zh
            assert row["file"].startswith(code + "/") and row["batch_id"] == "batch-0001"
            assert row["reason_zh"] == texts[row["rule_id"]]["zh"]
            assert row["reason_en"] == texts[row["rule_id"]]["en"]
            assert row["raw"]
            got[(row["file"], int(row["row_number"]), row["rule_id"])] += 1
    assert got == expected
    # The failed file's department has nothing to correct row by row: a header only.
    failed_csv = (folders["market_regulation"] / "quarantine.csv").read_text(encoding="utf-8-sig")
    assert _csv_rows(failed_csv) == []


@pytest.mark.integration
def test_pages_show_ledger_counts_failures_and_escaped_raw_text(province, reports):
    _, _, (script_file, _) = province
    _, results, _, folders = reports
    [failed] = results[FAILED_SOURCE]
    market = (folders["market_regulation"] / "index.html").read_text(encoding="utf-8")
    assert failed.error and html.escape(failed.error) in market
    assert load_departments()["market_regulation"].name_zh in market

    page = (folders["public_security"] / "index.html").read_text(encoding="utf-8")
    assert '<meta charset="utf-8">' in page and '<html lang="zh-CN">' in page
    assert SCRIPT not in page and html.escape(SCRIPT) in page
    [household] = results["public_security.household_register"]
    for count in (household.rows_read, household.accepted, household.quarantined):
        assert f"{count:,}" in page
    texts = rule_texts()
    for rule in ("INGEST-001", "INGEST-007"):
        assert html.escape(texts[rule]["zh"]) in page and html.escape(texts[rule]["en"]) in page
    assert script_file in page

    licences = (folders["data_bureau"] / "index.html").read_text(encoding="utf-8")
    assert "INGEST-008" in licences and "issuer_code" in licences


@pytest.mark.integration
def test_a_batch_without_problems_reports_nothing(reports, spark, tmp_path):
    settings, _, _, _ = reports
    assert write_reports(spark, settings, tmp_path, batch_id="batch-0002") == {}
    assert "Nothing to send back" in (tmp_path / "index.html").read_text(encoding="utf-8")

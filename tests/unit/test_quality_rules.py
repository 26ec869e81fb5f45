"""Quality rules as data, the checks they give each table, the score formula and the gate."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from datong.contracts import ContractError, load_resources
from quality.checks import GOLD_KEYS, Check, checks_for
from quality.gate import gate_of
from quality.rules import load_rules
from quality.score import Counts, score, timeliness
from quality.validate import CheckResult


def test_every_rule_has_both_sentences_and_a_known_severity():
    rules = load_rules()
    assert len(rules) >= 15
    for rule in rules.values():
        assert rule.zh and rule.en and rule.severity in ("warn", "fail")


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "quality.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def test_a_business_rule_without_its_columns_is_refused_with_file_and_line(tmp_path):
    path = _write(
        tmp_path,
        "rules:\n"
        "  - id: QUALITY-101\n"
        "    kind: id_birth_date\n"
        "    family: consistency\n"
        "    severity: fail\n"
        "    en: x\n"
        "    zh: 甲\n"
        "    apply:\n"
        "      - {resource: bronze.household_register, id: person_id}\n",
    )
    with pytest.raises(ContractError) as error:
        load_rules(path)
    message = str(error.value)
    assert "quality.yaml:2" in message and "needs date" in message


def test_an_unknown_column_or_severity_is_refused(tmp_path):
    path = _write(
        tmp_path,
        "rules:\n"
        "  - id: QUALITY-103\n"
        "    kind: date_order\n"
        "    family: consistency\n"
        "    severity: fatal\n"
        "    en: x\n"
        "    zh: 甲\n"
        "    apply:\n"
        "      - {resource: bronze.e_license, earlier: issue_date, later: expiry_day}\n",
    )
    with pytest.raises(ContractError) as error:
        load_rules(path)
    assert "quality.yaml:5: rules[0].severity" in str(error.value)
    fixed = path.read_text(encoding="utf-8").replace("fatal", "fail")
    with pytest.raises(ContractError) as error:
        load_rules(_write(tmp_path, fixed))
    assert "quality.yaml:9" in str(error.value) and "no element 'expiry_day'" in str(error.value)


def test_every_bronze_resource_gets_its_contract_checks():
    for name, resource in load_resources().items():
        checks = checks_for(name)
        keys = {c.key for c in checks}
        for element in resource.elements:
            assert f"QUALITY-002:{element.name}" in keys
            if not element.nullable:
                assert f"QUALITY-001:{element.name}" in keys
            if element.standard == "GB 11643":
                assert f"QUALITY-006:{element.name}" in keys
            if element.code_table:
                assert f"QUALITY-003:{element.name}" in keys
        assert any(c.rule == "QUALITY-009" and c.severity == "warn" for c in checks), name


def test_severity_can_differ_per_table():
    def rule(name: str, rule_id: str) -> Check:
        [check] = [c for c in checks_for(name) if c.rule == rule_id]
        return check

    # 公安 is the authority for birth dates; 教育's disagreement is a conflict, not a reject.
    assert rule("bronze.household_register", "QUALITY-101").severity == "fail"
    assert rule("bronze.student_enrollment", "QUALITY-101").severity == "warn"
    assert rule("population.person", "QUALITY-009").severity == "fail"


def test_today_in_a_range_is_the_check_date():
    day = dt.date(2030, 5, 6)
    [check] = [c for c in checks_for("bronze.household_register", day) if c.rule == "QUALITY-010"]
    assert check.kwargs["max_value"] == "2030-05-06"


def test_every_gold_table_has_a_key_check_that_closes_its_gate():
    for name, key in GOLD_KEYS.items():
        [check] = [c for c in checks_for(name) if c.rule == "QUALITY-009"]
        assert check.severity == "fail" and check.column == ",".join(key)


def _counts(**changes: object) -> Counts:
    base = {"delivered": 1000, "checked": 990, "missing": 0, "invalid": 0, "inconsistent": 0,
            "age_days": 0.5, "update_cycle": "daily"}  # fmt: skip
    return Counts(**{**base, **changes})  # type: ignore[arg-type]


def test_clean_fresh_data_scores_100():
    result = score(_counts())
    assert (result.completeness, result.validity, result.consistency, result.timeliness) == (
        100.0, 100.0, 100.0, 100.0,
    )  # fmt: skip
    assert result.score == 100.0


def test_score_falls_as_errors_are_added():
    clean = score(_counts())
    for part, field in (("completeness", "missing"), ("validity", "invalid"),
                        ("consistency", "inconsistent")):  # fmt: skip
        fewer = score(_counts(**{field: 10}))
        more = score(_counts(**{field: 100}))
        assert getattr(clean, part) > getattr(fewer, part) > getattr(more, part)
        assert clean.score > fewer.score > more.score
    # The formula, worked by hand: 100 missing of 1000 delivered, 99 inconsistent of 990.
    worked = score(_counts(missing=100, inconsistent=99))
    assert worked.completeness == pytest.approx(90.0)
    assert worked.consistency == pytest.approx(90.0)
    assert worked.score == pytest.approx(0.30 * 90 + 0.30 * 100 + 0.25 * 90 + 0.15 * 100)


def test_timeliness_against_the_update_cycle():
    assert timeliness(6.9, "weekly") == 100.0
    assert timeliness(10.5, "weekly") == pytest.approx(50.0)
    assert timeliness(14.0, "weekly") == 0.0
    assert timeliness(400.0, "yearly") == pytest.approx(100 * (2 - 400 / 366))


def _result(rule: str, severity: str, success: bool) -> CheckResult:
    check = Check(rule, "population.person", "key_unique", "consistency", severity,
                  "ExpectColumnValuesToBeUnique", {}, "person_id")  # fmt: skip
    return CheckResult(check, success, 100, 0 if success else 2, 0.0 if success else 2.0)


def test_a_failed_warn_check_does_not_close_the_gate():
    gate = gate_of("population.person", [_result("QUALITY-009", "warn", False)], "run")
    assert gate.passed and gate.reasons == ""


def test_a_failed_fail_check_closes_the_gate_and_says_why():
    results = [_result("QUALITY-009", "fail", False), _result("QUALITY-001", "fail", True)]
    gate = gate_of("population.person", results, "run")
    assert not gate.passed
    assert gate.reasons == (
        "QUALITY-009 on person_id: 2 of 100 rows "
        "(the key identifies more than one record / 主键重复，一个标识对应多条记录)"
    )


def test_the_command_refuses_an_unknown_table_without_starting_spark(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "DATONG_STATE_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "datong.cli", "quality", "bronze.no_such_table"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert "no quality suite for 'bronze.no_such_table'" in result.stdout + result.stderr


def test_great_expectations_is_not_imported_by_the_command_line_or_the_checks():
    import subprocess
    import sys

    code = (
        "import sys, datong.cli, jobs.quality, quality.checks, quality.gate; "
        "assert 'great_expectations' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)

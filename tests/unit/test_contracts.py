"""The declared department resources, departments and code tables in ``schemas/``: they load,
agree with each other and with the national standards, and a broken file is refused with
its name and line."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from datong.contracts import (
    GRADES,
    SCHEMAS_DIR,
    STANDARDS,
    ContractError,
    grade_rank,
    load_code_table,
    load_code_tables,
    load_departments,
    load_resources,
)

EXPECTED_RESOURCES = {
    "bronze.household_register": "public_security",
    "bronze.marriage_registration": "civil_affairs",
    "bronze.death_registration": "civil_affairs",
    "bronze.social_organization": "civil_affairs",
    "bronze.birth_certificate": "health",
    "bronze.student_enrollment": "education",
    "bronze.social_insurance": "human_resources",
    "bronze.natural_person_taxpayer": "tax",
    "bronze.enterprise_taxpayer": "tax",
    "bronze.enterprise_registration": "market_regulation",
    "bronze.public_institution": "institution_staffing",
    "bronze.administrative_division": "natural_resources",
    "bronze.standard_address": "natural_resources",
    "bronze.administrative_license": "credit",
    "bronze.administrative_penalty": "credit",
    "bronze.credit_red_list": "credit",
    "bronze.credit_black_list": "credit",
    "bronze.e_license": "data_bureau",
}

# GB/T 3304-1991, numeric codes 01 to 56 in the standard's order. Written out from the
# standard, not read from the YAML: note 高山族 is 23, not last as some lists put it.
ETHNIC_GROUPS = [
    "汉族",
    "蒙古族",
    "回族",
    "藏族",
    "维吾尔族",
    "苗族",
    "彝族",
    "壮族",
    "布依族",
    "朝鲜族",
    "满族",
    "侗族",
    "瑶族",
    "白族",
    "土家族",
    "哈尼族",
    "哈萨克族",
    "傣族",
    "黎族",
    "傈僳族",
    "佤族",
    "畲族",
    "高山族",
    "拉祜族",
    "水族",
    "东乡族",
    "纳西族",
    "景颇族",
    "柯尔克孜族",
    "土族",
    "达斡尔族",
    "仫佬族",
    "羌族",
    "布朗族",
    "撒拉族",
    "毛南族",
    "仡佬族",
    "锡伯族",
    "阿昌族",
    "普米族",
    "塔吉克族",
    "怒族",
    "乌孜别克族",
    "俄罗斯族",
    "鄂温克族",
    "德昂族",
    "保安族",
    "裕固族",
    "京族",
    "塔塔尔族",
    "独龙族",
    "鄂伦春族",
    "赫哲族",
    "门巴族",
    "珞巴族",
    "基诺族",
]


def _resource_files() -> list[Path]:
    return sorted((SCHEMAS_DIR / "resources").rglob("*.yaml"))


def _elements():
    for resource in load_resources().values():
        for element in resource.elements:
            yield resource, element


# -- the declared contracts -------------------------------------------------------------


def test_every_resource_file_loads_under_its_own_name():
    resources = load_resources()
    files = _resource_files()
    assert len(files) == len(resources)
    for path in files:
        name = f"bronze.{path.stem}"
        assert name in resources, path
        assert re.fullmatch(r"bronze\.[a-z][a-z0-9_]*", name)
        assert resources[name].table == path.stem
        assert resources[name].department == path.parent.name
        assert resources[name].version >= 1


def test_the_expected_resources_are_declared_by_their_departments():
    resources = load_resources()
    assert {name: r.department for name, r in resources.items()} == EXPECTED_RESOURCES


def test_every_department_of_a_resource_or_code_exists():
    departments = load_departments()
    assert {
        "public_security",
        "civil_affairs",
        "education",
        "health",
        "tax",
        "human_resources",
        "market_regulation",
        "institution_staffing",
        "natural_resources",
        "credit",
        "data_bureau",
    } <= set(departments)
    assert {r.department for r in load_resources().values()} <= set(departments)
    for table in load_code_tables().values():
        for code in table.codes:
            assert table.department_of(code) in (None, *departments)
    assert len({d.org_code for d in departments.values()}) == len(departments)


def test_every_code_table_named_by_an_element_exists_and_holds_its_allowed_values():
    tables = load_code_tables()
    for resource, element in _elements():
        if element.code_table is None:
            continue
        assert element.code_table in tables, (resource.name, element.name)
        assert (SCHEMAS_DIR / "codes" / f"{element.code_table}.yaml").is_file()
        codes = load_code_table(element.code_table)
        assert set(element.allowed_values or []) <= set(codes), (resource.name, element.name)
        standard = tables[element.code_table].standard
        assert standard is None or element.standard == standard, (resource.name, element.name)


def test_every_standard_cited_is_a_known_one():
    known = set(STANDARDS) | {t.standard for t in load_code_tables().values() if t.standard}
    for resource, element in _elements():
        assert element.standard is None or element.standard in known, (resource.name, element)


def test_primary_keys_and_watermarks_name_existing_non_null_elements():
    for resource in load_resources().values():
        names = resource.element_names
        assert len(names) == len(set(names)), resource.name
        for key in resource.primary_key:
            assert key in names, (resource.name, key)
            assert not resource.element(key).nullable, (resource.name, key)
        watermark = resource.delivery.watermark
        if resource.delivery.mode == "incremental":
            assert watermark is not None, resource.name
        if watermark is not None:
            assert resource.element(watermark).type in ("date", "timestamp"), resource.name


def test_deliveries_come_in_the_shapes_departments_really_send():
    resources = load_resources()
    shapes = {(r.delivery.format, r.delivery.encoding) for r in resources.values()}
    assert {("csv", "utf-8"), ("csv", "gb18030"), ("jsonl", "utf-8"), ("xlsx", None)} <= shapes
    assert resources["bronze.social_insurance"].delivery.format == "db_table"
    assert resources["bronze.household_register"].delivery.encoding == "gb18030"
    for resource in resources.values():
        if resource.delivery.format == "csv":
            assert resource.delivery.encoding in ("utf-8", "gb18030")


# -- the grading policy (schemas/README.md) ---------------------------------------------


def test_citizen_id_numbers_are_named_as_ids_personal_and_graded_general_4():
    seen = 0
    for resource, element in _elements():
        if element.standard != "GB 11643":
            continue
        seen += 1
        assert element.name == "person_id" or element.name.endswith("_id"), element.name
        assert element.personal, (resource.name, element.name)
        assert element.grade == "general-4", (resource.name, element.name)
        assert grade_rank(element.grade) >= grade_rank("general-3")
        assert element.type == "string" and element.max_length == 18
    assert seen >= 10


def test_personal_elements_are_graded_general_2_or_higher_and_others_are_not_general_3_or_4():
    for resource, element in _elements():
        if element.personal:
            assert grade_rank(element.grade) >= grade_rank("general-2"), (resource.name, element)
        else:
            assert element.grade not in ("general-3", "general-4"), (resource.name, element)


def test_every_element_of_a_sensitive_resource_about_persons_is_general_4():
    # Marriage history, births (medical, children) and students (mostly children).
    for name in ("bronze.marriage_registration", "bronze.birth_certificate"):
        for element in load_resources()[name].elements:
            if element.personal:
                assert element.grade == "general-4", (name, element.name)
    for element in load_resources()["bronze.student_enrollment"].elements:
        assert element.personal and element.grade == "general-4", element.name


def test_grades_are_ordered_from_general_to_core():
    assert GRADES == ("general-1", "general-2", "general-3", "general-4", "important", "core")


# -- the code tables against the national standards -------------------------------------


def test_gender_table_is_exactly_gb_t_2261_1():
    assert load_code_table("gender") == {
        "0": "未知的性别",
        "1": "男性",
        "2": "女性",
        "9": "未说明的性别",
    }


def test_ethnicity_table_is_exactly_gb_t_3304():
    table = load_code_table("ethnicity")
    expected_codes = [f"{number:02d}" for number in range(1, 57)] + ["97", "98"]
    assert list(table) == expected_codes
    assert [table[f"{number:02d}"] for number in range(1, 57)] == ETHNIC_GROUPS
    assert table["97"] == "其他未识别民族"
    assert table["98"] == "外国血统中国籍人士"


def test_marital_status_table_is_exactly_gb_t_2261_2():
    assert load_code_table("marital_status") == {
        "10": "未婚",
        "20": "已婚",
        "21": "初婚",
        "22": "再婚",
        "23": "复婚",
        "30": "丧偶",
        "40": "离婚",
        "90": "未说明的婚姻状况",
    }


def test_family_relation_table_has_the_gb_t_4761_codes():
    table = load_code_table("family_relation")
    main = {"01": "本人", "02": "户主", "10": "配偶", "20": "子", "30": "女", "50": "父母"}
    assert main.items() <= table.items()
    assert table["51"] == "父亲" and table["52"] == "母亲" and table["99"] == "非亲属"
    assert all(re.fullmatch(r"\d\d", code) for code in table)
    assert "03" not in table  # 小集体户户主, dropped in the 2008 edition


def test_industry_sections_are_a_to_t_of_gb_t_4754_2017():
    table = load_code_table("industry_section")
    assert list(table) == list("ABCDEFGHIJKLMNOPQRST")
    assert table["C"] == "制造业" and table["F"] == "批发和零售业" and table["T"] == "国际组织"


def test_credit_code_authorities_and_their_departments_follow_gb_32100():
    tables = load_code_tables()
    authority = tables["credit_code_authority"]
    assert list(authority.codes) == [*"123456789", "A", "N", "Y"]
    assert authority.department_of("1") == "institution_staffing"
    assert authority.department_of("5") == "civil_affairs"
    assert authority.department_of("9") == "market_regulation"
    assert authority.department_of("Y") is None


def test_subject_kinds_license_types_and_entity_types():
    assert set(load_code_table("subject_kind")) == {
        "natural_person",
        "enterprise",
        "public_institution",
        "government_body",
        "social_organization",
    }
    license_types = load_code_tables()["license_type"]
    assert len(license_types.codes) >= 12
    assert all(license_types.department_of(code) for code in license_types.codes)
    labels = set(license_types.labels.values())
    assert {"营业执照", "居民身份证", "结婚证", "出生医学证明", "不动产权证书"} <= labels
    assert "个体工商户" in load_code_table("entity_type").values()


def test_loaders_are_cached():
    assert load_resources() is load_resources()
    assert load_code_table("gender") is load_code_table("gender")


# -- broken files are refused with their name and line ----------------------------------

GOOD_RESOURCE = """\
name: bronze.sample_register
title_zh: 样例登记
version: 1
department: tax
update_cycle: daily
delivery:
  format: csv
  encoding: utf-8
  mode: full
primary_key: [person_id]
description: A small resource for the tests.
elements:
  - name: person_id
    title_zh: 公民身份号码
    type: string
    nullable: false
    standard: GB 11643
    grade: general-4
    personal: true
    max_length: 18
  - name: gender
    title_zh: 性别
    type: string
    nullable: false
    standard: GB/T 2261.1
    code_table: gender
    grade: general-3
    personal: true
"""


@pytest.fixture
def schemas_root(tmp_path: Path) -> Path:
    """A copy of the real departments and code tables, with no resources yet."""
    shutil.copy(SCHEMAS_DIR / "departments.yaml", tmp_path / "departments.yaml")
    shutil.copytree(SCHEMAS_DIR / "codes", tmp_path / "codes")
    (tmp_path / "resources" / "tax").mkdir(parents=True)
    return tmp_path


def _write(root: Path, text: str, name: str = "sample_register") -> Path:
    path = root / "resources" / "tax" / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _line(text: str, fragment: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if fragment in line)


def _refusal(root: Path) -> str:
    with pytest.raises(ContractError) as caught:
        load_resources(root)
    return str(caught.value)


def test_a_good_sample_loads(schemas_root):
    _write(schemas_root, GOOD_RESOURCE)
    assert list(load_resources(schemas_root)) == ["bronze.sample_register"]


def test_a_wrong_type_is_refused_with_file_and_line(schemas_root):
    gender_type = "type: string\n    nullable: false\n    standard: GB/T"
    text = GOOD_RESOURCE.replace(gender_type, gender_type.replace("string", "text"))
    _write(schemas_root, text)
    message = _refusal(schemas_root)
    assert f"sample_register.yaml:{_line(text, 'type: text')}: elements[1].type" in message
    assert "'text'" in message


def test_an_unknown_field_is_refused_with_file_and_line(schemas_root):
    text = GOOD_RESOURCE.replace("  mode: full\n", "  mode: full\n  compression: gzip\n")
    _write(schemas_root, text)
    message = _refusal(schemas_root)
    assert f"sample_register.yaml:{_line(text, 'compression')}: delivery.compression" in message
    assert "Extra inputs are not permitted" in message


def test_a_missing_key_is_refused_with_file_and_the_line_of_its_owner(schemas_root):
    text = GOOD_RESOURCE.replace("    grade: general-3\n", "")
    _write(schemas_root, text)
    message = _refusal(schemas_root)
    assert f"sample_register.yaml:{_line(text, 'name: gender')}: elements[1].grade" in message
    assert "Field required" in message


def test_broken_references_are_refused_with_file_and_line(schemas_root):
    text = (
        GOOD_RESOURCE.replace("department: tax", "department: taxes")
        .replace("code_table: gender", "code_table: sex")
        .replace("primary_key: [person_id]", "primary_key:\n  - person_id\n  - household_id")
    )
    _write(schemas_root, text)
    message = _refusal(schemas_root)
    assert f"sample_register.yaml:{_line(text, 'department:')}: department" in message
    assert "unknown department 'taxes'" in message
    assert f"sample_register.yaml:{_line(text, 'sex')}: elements[1].code_table" in message
    assert f"sample_register.yaml:{_line(text, '- household_id')}: primary_key[1]" in message


def test_a_name_that_differs_from_the_file_is_refused(schemas_root):
    _write(schemas_root, GOOD_RESOURCE, name="other_register")
    message = _refusal(schemas_root)
    assert "other_register.yaml:1: name: the name must be bronze.other_register" in message


def test_a_citizen_id_below_general_4_is_refused(schemas_root):
    text = GOOD_RESOURCE.replace("grade: general-4", "grade: general-2")
    _write(schemas_root, text)
    message = _refusal(schemas_root)
    assert f"sample_register.yaml:{_line(text, 'name: person_id')}: elements[0]" in message
    assert "GB 11643" in message


def test_csv_without_encoding_and_incremental_without_watermark_are_refused(schemas_root):
    text = GOOD_RESOURCE.replace("  encoding: utf-8\n  mode: full", "  mode: incremental")
    _write(schemas_root, text)
    message = _refusal(schemas_root)
    assert f"sample_register.yaml:{_line(text, 'delivery:')}: delivery: a csv delivery" in message


def test_invalid_yaml_and_duplicate_keys_are_refused_with_their_line(schemas_root):
    _write(schemas_root, GOOD_RESOURCE + "  - name: [unclosed\n", name="sample_register")
    message = _refusal(schemas_root)
    assert "sample_register.yaml:" in message and "not valid YAML" in message

    text = GOOD_RESOURCE.replace("version: 1\n", "version: 1\nversion: 2\n")
    _write(schemas_root, text)
    message = _refusal(schemas_root)
    assert (
        f"sample_register.yaml:{_line(text, 'version: 2')}: key 'version' appears twice" in message
    )


def test_an_unquoted_numeric_code_is_refused(schemas_root):
    path = schemas_root / "codes" / "gender.yaml"
    text = path.read_text(encoding="utf-8").replace('"1": 男性', "1: 男性")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ContractError) as caught:
        load_code_tables(schemas_root)
    assert f"gender.yaml:{_line(text, '1: 男性')}: key '1' must be a string" in str(caught.value)


def test_every_problem_of_every_file_is_reported_at_once(schemas_root):
    _write(schemas_root, GOOD_RESOURCE.replace("version: 1", "version: 0"), name="sample_register")
    _write(schemas_root, GOOD_RESOURCE.replace("update_cycle: daily", "update_cycle: hourly"), "b")
    with pytest.raises(ContractError) as caught:
        load_resources(schemas_root)
    assert {p.file.name for p in caught.value.problems} == {"sample_register.yaml", "b.yaml"}

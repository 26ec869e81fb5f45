"""GB/T 2260 reference data for Hubei: codes, hierarchy, history and synthetic boundaries."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from datetime import date

import pytest
import shapely
from shapely.geometry import Point

from datong.reference import (
    BOUNDARIES_FILE,
    CHANGES_FILE,
    DIVISIONS_FILE,
    REFERENCE_DIR,
    Division,
    division_changes,
    load_boundaries,
    load_divisions,
)
from datong.settings import REPO_ROOT

#: Prefecture-level units of Hubei per GB/T 2260 (current codes), written from the standard:
#: 12 prefecture-level cities plus Wuhan, the Enshi autonomous prefecture, and the four
#: province-administered county-level units (省直辖县级行政区划), which this data set models
#: as prefecture-level children of the province because they have no prefecture above them.
EXPECTED_PREFECTURES = {
    "420100": "武汉市",
    "420200": "黄石市",
    "420300": "十堰市",
    "420500": "宜昌市",
    "420600": "襄阳市",
    "420700": "鄂州市",
    "420800": "荆门市",
    "420900": "孝感市",
    "421000": "荆州市",
    "421100": "黄冈市",
    "421200": "咸宁市",
    "421300": "随州市",
    "422800": "恩施土家族苗族自治州",
    "429004": "仙桃市",
    "429005": "潜江市",
    "429006": "天门市",
    "429021": "神农架林区",
}
PROVINCE_ADMINISTERED = {"429004", "429005", "429006", "429021"}

#: The county-level divisions of Hubei per the standard since the 2020 change of 监利: 103 in all,
#: namely 39 districts, 26 county-level cities (仙桃, 潜江, 天门 among them), 35 counties,
#: 2 autonomous counties and 1 forestry district (神农架).
EXPECTED_COUNTY_LEVEL = {"区": 39, "市": 26, "县": 35, "自治县": 2, "林区": 1}


@pytest.fixture(scope="module")
def divisions() -> list[Division]:
    return load_divisions()


@pytest.fixture(scope="module")
def current(divisions: list[Division]) -> dict[str, Division]:
    return {division.code: division for division in divisions if division.current}


@pytest.fixture(scope="module")
def shapes() -> dict[str, shapely.Geometry]:
    return {code: shapely.from_wkt(text) for code, text in load_boundaries().items()}


def test_codes_are_six_digit_hubei_codes(divisions: list[Division]):
    codes = [division.code for division in divisions]
    assert len(codes) == len(set(codes))
    for division in divisions:
        assert len(division.code) == 6 and division.code.isdigit(), division
        assert division.code.startswith("42"), division
        assert division.level in ("province", "prefecture", "county"), division
        assert "市辖区" not in division.name and "省直辖" not in division.name, division
        assert division.valid_to is None or division.valid_from < division.valid_to, division


def test_one_province(current: dict[str, Division]):
    provinces = [division for division in current.values() if division.level == "province"]
    assert [(d.code, d.name, d.parent_code) for d in provinces] == [("420000", "湖北省", None)]


def test_the_17_prefecture_level_units(current: dict[str, Division]):
    prefectures = {
        division.code: division.name
        for division in current.values()
        if division.level == "prefecture"
    }
    assert prefectures == EXPECTED_PREFECTURES
    for code in prefectures:
        assert current[code].parent_code == "420000"


def test_county_parents_exist_and_share_the_first_four_digits(divisions: list[Division]):
    by_code = {division.code: division for division in divisions}
    for division in divisions:
        if division.level != "county":
            continue
        parent = by_code[division.parent_code]
        assert parent.level == "prefecture", division
        assert parent.current, division
        # 429xxx units have no county-level children here, so the 4-digit rule has no exception.
        assert parent.code not in PROVINCE_ADMINISTERED, division
        assert division.code[:4] == parent.code[:4], division


def test_county_level_count_matches_the_standard(current: dict[str, Division]):
    county_level = [
        division
        for division in current.values()
        if division.level == "county" or division.code in PROVINCE_ADMINISTERED
    ]
    assert len(county_level) == 103
    assert sum(division.level == "county" for division in current.values()) == 99
    kinds = Counter(
        "自治县"
        if division.name.endswith("自治县")
        else "林区"
        if division.name.endswith("林区")
        else division.name[-1]
        for division in county_level
    )
    assert kinds == EXPECTED_COUNTY_LEVEL


def test_history_maps_retired_codes_to_current_ones(divisions: list[Division]):
    by_code = {division.code: division for division in divisions}
    changes = {change.retired_code: change for change in division_changes()}
    assert (changes["420821"].current_code, changes["420821"].current_name) == ("420882", "京山市")
    assert (changes["421023"].current_code, changes["421023"].current_name) == ("421088", "监利市")
    assert changes["420821"].retired_name == "京山县"
    assert changes["420821"].change_date.year == 2018
    assert changes["421023"].retired_name == "监利县"
    assert changes["421023"].change_date.year == 2020
    for change in changes.values():
        retired, successor = by_code[change.retired_code], by_code[change.current_code]
        assert retired.name == change.retired_name and successor.name == change.current_name
        assert retired.valid_to == change.change_date == successor.valid_from
        assert successor.current
        assert retired.parent_code == successor.parent_code
    retired_codes = {division.code for division in divisions if not division.current}
    assert retired_codes == set(changes)


def test_valid_on_a_day(divisions: list[Division]):
    on_2019 = {division.code for division in divisions if division.valid_on(date(2019, 6, 1))}
    assert {"420882", "421023"} <= on_2019
    assert not {"420821", "421088"} & on_2019
    on_2021 = [division for division in divisions if division.valid_on(date(2021, 6, 1))]
    assert sum(division.level == "county" for division in on_2021) == 99


def test_every_current_division_has_one_valid_boundary(current, shapes):
    assert set(shapes) == set(current)
    for code, shape in shapes.items():
        assert shape.geom_type in ("Polygon", "MultiPolygon"), code
        assert not shape.is_empty and shape.is_valid, code
        assert shape.area > 0, code
        # Coordinates are on the 1e-5 degree grid.
        assert shapely.set_precision(shape, 1e-5).equals(shape), code
        assert shapely.set_precision(shape, 1e-5).is_valid, code


def test_children_lie_within_their_parents(current, shapes):
    for code, division in current.items():
        if division.parent_code:
            assert shapes[division.parent_code].buffer(1e-9).contains(shapes[code]), code


def _children(current: dict[str, Division], parent: str) -> list[str]:
    return [code for code, division in current.items() if division.parent_code == parent]


def test_prefectures_tile_the_province(current, shapes):
    province = shapes["420000"]
    parts = [shapes[code] for code in _children(current, "420000")]
    assert len(parts) == 17
    assert shapely.union_all(parts).area == pytest.approx(province.area, rel=1e-6)
    assert sum(part.area for part in parts) == pytest.approx(province.area, rel=1e-6)
    assert province.bounds == pytest.approx((108.37, 29.02, 116.12, 33.26), abs=1e-4)


def test_counties_tile_their_prefecture(current, shapes):
    for code in EXPECTED_PREFECTURES:
        children = _children(current, code)
        if not children:
            assert code in PROVINCE_ADMINISTERED
            continue
        parts = [shapes[child] for child in children]
        assert shapely.union_all(parts).area == pytest.approx(shapes[code].area, rel=1e-6)
        assert sum(part.area for part in parts) == pytest.approx(shapes[code].area, rel=1e-6)


def test_seats_lie_inside_their_own_polygon(current, shapes):
    for code, division in current.items():
        assert division.longitude is not None and division.latitude is not None, code
        assert shapes[code].contains(Point(division.longitude, division.latitude)), code


def test_loader_does_not_import_shapely():
    code = "import sys, datong.reference; print('shapely' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )
    assert result.stdout.strip() == "False"


def test_build_script_reproduces_the_files(tmp_path):
    subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "build_hubei_reference.py"),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        check=True,
    )
    for name in (DIVISIONS_FILE, CHANGES_FILE, BOUNDARIES_FILE):
        assert (tmp_path / name).read_bytes() == (REFERENCE_DIR / name).read_bytes(), name

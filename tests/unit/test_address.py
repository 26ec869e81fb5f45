"""Address matching: typed variants find their standard address; nothing is guessed."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from jobs.address import (
    COUNTY_NOT_IN_PREFECTURE,
    DUPLICATE_STANDARD,
    METHODS,
    NO_COUNTY,
    NO_HOUSE_NUMBER,
    NUMBER_NOT_FOUND,
    ROAD_AMBIGUOUS,
    ROAD_NOT_FOUND,
    SEVERAL_COUNTIES,
    AddressIndex,
    StandardAddress,
    match_frame,
    normalise,
)
from synthetic.errors import ErrorRates
from synthetic.generate import Options, generate

LIBRARY = [
    StandardAddress("a1", "湖北省武汉市江岸区解放路12号", "420102", "解放路", "12号"),
    StandardAddress("a2", "湖北省武汉市江岸区解放街12号", "420102", "解放街", "12号"),
    StandardAddress("a3", "湖北省十堰市郧阳区人民路3号", "420304", "人民路", "3号"),
    StandardAddress("a4", "湖北省荆门市京山市建设大道8号", "420882", "建设大道", "8号"),
    StandardAddress("a5", "湖北省荆州市监利市光明街105号", "421088", "光明街", "105号"),
    StandardAddress("a6", "湖北省仙桃市长江路7号", "429004", "长江路", "7号"),
    StandardAddress("a7", "湖北省恩施土家族苗族自治州恩施市人民路1号", "422801", "人民路", "1号"),
    StandardAddress("a8", "湖北省武汉市江汉区新华路5号", "420103", "新华路", "5号"),
    StandardAddress("a9", "湖北省武汉市硚口区新华路5号", "420104", "新华路", "5号"),
    StandardAddress("b1", "湖北省黄石市下陆区文化路9号", "420204", "文化路", "9号"),
    StandardAddress("b2", "湖北省黄石市下陆区文化路9号", "420204", "文化路", "9号"),
    StandardAddress("b3", "湖北省武汉市江岸区人民路20号", "420102", "人民路", "20号"),
    StandardAddress("b4", "湖北省武汉市江岸区光明路20号", "420102", "光明路", "20号"),
]


@pytest.fixture(scope="module")
def index() -> AddressIndex:
    return AddressIndex.build(LIBRARY)


@pytest.mark.parametrize(
    ("text", "address_id", "method"),
    [
        ("湖北省武汉市江岸区解放路12号", "a1", "exact"),
        ("武汉市江岸区解放路12号", "a1", "normalised"),
        ("江岸区解放路12号", "a1", "normalised"),
        ("湖北江岸区 解放路 １２号", "a1", "normalised"),
        ("武汉江岸区解放路12號3栋2单元501室", "a1", "normalised"),
        ("江岸区解放路十二号A座", "a1", "normalised"),
        ("湖北省武汉市江岸区解放路12", "a1", "normalised"),
        ("湖北省十堰市郧县人民路3号", "a3", "normalised"),
        ("郧县人民路三号", "a3", "normalised"),
        ("京山县建设大道8号3栋2单元501室", "a4", "normalised"),
        ("监利县光明街一百零五号", "a5", "normalised"),
        ("仙桃市长江路7号", "a6", "normalised"),
        ("恩施州恩施市人民路1号", "a7", "normalised"),
        ("京山市建设路8号", "a4", "fuzzy_road"),  # the county's only 建设 road
        ("江岸区解方路12号", "a1", "fuzzy_road"),  # one wrong character
        ("监利市光明衔105号", "a5", "fuzzy_road"),
    ],
)
def test_variants_find_their_standard_address(index, text, address_id, method):
    found = index.match(text)
    assert (found.address_id, found.method, found.reason) == (address_id, method, None)
    assert 0.8 <= found.score <= 1.0
    assert found.division_code == next(
        a.division_code for a in LIBRARY if a.address_id == address_id
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("江岸区解放路", NO_HOUSE_NUMBER),
        ("江岸区解放路3栋2单元501室", NO_HOUSE_NUMBER),
        ("江岸区解放路3号楼", NO_HOUSE_NUMBER),
        ("解放路12号", NO_COUNTY),
        ("黄石市江岸区解放路12号", COUNTY_NOT_IN_PREFECTURE),
        ("江岸区解放路13号", NUMBER_NOT_FOUND),
        ("江岸区解放略12号", ROAD_AMBIGUOUS),  # 解放路 and 解放街 are both one character off
        ("江岸区解放12号", ROAD_AMBIGUOUS),  # 解放路 or 解放街
        ("江岸区人明路20号", ROAD_AMBIGUOUS),  # 人民路 or 光明路
        ("江岸区解放路附12号", ROAD_NOT_FOUND),  # an extra character is not a typo
        ("江岸区和平路12号", ROAD_NOT_FOUND),
        ("武汉市新华路5号", SEVERAL_COUNTIES),
        ("下陆区文化路9号", DUPLICATE_STANDARD),
    ],
)
def test_never_guesses(index, text, reason):
    found = index.match(text)
    assert (found.address_id, found.division_code, found.method) == (None, None, "unmatched")
    assert (found.score, found.reason) == (0.0, reason)
    assert " / " in found.reason  # Chinese and English


def test_division_hint_fills_a_missing_county_only(index):
    assert index.match("武汉市新华路5号", "420104").address_id == "a9"
    assert index.match("新华路5号", "420103").address_id == "a8"
    assert index.match("新华路5号", "420103").method == "no_division"
    assert index.match("武汉市解放路12号").method == "no_division"
    # A retired code as the hint, and a hint that disagrees with the county written.
    assert index.match("建设大道8号", "420821").address_id == "a4"
    assert index.match("江岸区解放路12号", "420104").address_id == "a1"
    assert index.match("新华路5号", "420100").reason == SEVERAL_COUNTIES


@pytest.mark.parametrize("text", [None, "", "   ", float("nan")])
def test_empty_text(index, text):
    assert index.match(text).method == "unmatched"


def test_normalise():
    assert normalise(" 湖北省　武汉市（江岸区）解放路１２號 ") == "湖北省武汉市江岸区解放路12号"
    assert normalise("解放路12－3号") == "解放路12-3号"


def test_match_frame_adds_the_match_columns(index):
    frame = pd.DataFrame(
        {
            "credit_code": ["x1", "x2", "x3", "x4"],
            "address": ["江岸区解放路12号", None, "新华路5号", "江岸区解放路12号"],
            "division_code": ["420102", "420102", "420104", None],
        }
    )
    matched = match_frame(frame, index, hint_column="division_code")
    assert list(matched.columns) == [
        "credit_code",
        "address",
        "division_code",
        "address_id",
        "matched_division_code",
        "match_method",
        "match_score",
        "match_reason",
    ]
    assert matched["address_id"].tolist() == ["a1", None, "a9", "a1"]
    methods = ["normalised", "unmatched", "no_division", "normalised"]
    assert matched["match_method"].tolist() == methods
    assert set(matched["match_method"]) <= set(METHODS)
    assert matched["match_reason"].notna().tolist() == [False, True, False, False]
    assert list(frame.columns) == ["credit_code", "address", "division_code"]


# -- scored against a generated province ---------------------------------------------

REGISTERS = {
    "market_regulation/enterprise_registration",
    "institution_staffing/public_institution",
    "civil_affairs/social_organization",
}


def _rows(path: Path) -> list[dict[str, str]]:
    if path.suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle))
    from openpyxl import load_workbook

    sheet = load_workbook(path, read_only=True).active
    values = sheet.iter_rows(values_only=True)
    names = [str(v) for v in next(values)]
    return [dict(zip(names, row, strict=False)) for row in values]


def _delivery(out: Path, table: str) -> list[dict[str, str]]:
    [path] = (out / table / "batch-0001").iterdir()
    return _rows(path)


def test_legal_person_addresses_match_the_truth(tmp_path_factory):
    out = tmp_path_factory.mktemp("address-province")
    generate(Options(persons=5000, seed=1, out=out, rates=ErrorRates.none()))
    library = _delivery(out, "natural_resources/standard_address")
    index = AddressIndex.build(
        StandardAddress(
            r["address_id"], r["full_address"], r["division_code"], r["road"], r["house_number"]
        )
        for r in library
    )
    legal_persons = _rows(out / "_truth" / "batch-0001" / "legal_person.csv")
    truth = {r["credit_code"]: r["address_id"] for r in legal_persons}
    frames = [pd.DataFrame(_delivery(out, table)) for table in sorted(REGISTERS)]
    registers = pd.concat([f[["credit_code", "address", "division_code"]] for f in frames])
    matched = match_frame(registers, index, hint_column="division_code")
    expected = matched["credit_code"].map(truth)
    correct = (matched["address_id"] == expected).sum()
    wrong = (matched["address_id"].notna() & (matched["address_id"] != expected)).sum()
    assert len(matched) == len(truth) > 250
    assert wrong == 0
    assert correct / len(matched) >= 0.98
    unmatched = matched[matched["address_id"].isna()]
    assert unmatched["match_reason"].notna().all()
    assert set(matched["match_method"]) >= {"exact", "normalised"}

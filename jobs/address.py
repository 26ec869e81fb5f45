"""Matching free-text addresses (地址匹配) to the standard address library (标准地址库).

Departments type addresses by hand: without 湖北省 or the prefecture, with a county's old
name (郧县 for 郧阳区), with building and room details after the house number, with spaces,
full-width digits or Chinese numerals. An address is read as [province] [prefecture]
county, road, house number "号", [details]; the county and its road must then hold exactly
that house number in the library. A road may differ from the library's by one wrong
character or by its suffix (路/街/大道), when exactly one road of the county is that close.

Nothing is guessed: an address without a house number, with an unknown road or house
number, or that fits several standard addresses is unmatched, with a reason in Chinese and
English. A wrong match costs far more than an unmatched one (a worklist item).

cpca was tried for the division prefix and rejected: it reads 郧县 as 重庆市 and leaves
"州" behind after 恩施州; the GB/T 2260 reference names (current and retired) are parsed
here instead. jieba was not needed: the road ends at its suffix and the number at 号.
rapidfuzz finds the roads one edit away.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rapidfuzz import fuzz, process
from rapidfuzz.distance import Levenshtein

if TYPE_CHECKING:
    import pandas as pd

METHODS = ("exact", "normalised", "fuzzy_road", "no_division", "unmatched")
PROVINCE_NAMES = ("湖北省", "湖北")
# Longest first, so 大道 is not read as 道.
ROAD_SUFFIXES = ("大道", "大街", "胡同", "路", "街", "道", "巷", "弄", "里")

# Scores: the text equals the standard address (1.0), differs only in form (0.95), names
# a road by another suffix (0.9), or names no county that the house was found in (0.85).
SCORE_NORMALISED = 0.95
SCORE_ROAD_SUFFIX = 0.9
SCORE_NO_DIVISION = 0.85
# A one-character road typo is accepted when road + number + 号 still agree this much
# (a 3-character road with one wrong character and a 2-digit number scores 0.83).
FUZZY_MIN_SCORE = 0.8
# Shorter roads are two characters: one typo is half the name, too little to go on.
FUZZY_MIN_ROAD_LENGTH = 3

EMPTY = "空地址 / empty address"
NO_HOUSE_NUMBER = "无门牌号 / no house number"
NO_ROAD = "无道路名 / no road name"
NO_COUNTY = "无法识别区县 / no county or district recognised"
COUNTY_NOT_IN_PREFECTURE = "区县不属于所写地市 / county is not in the prefecture written"
SEVERAL_COUNTIES = "未写区县且多个区县有此门牌 / no county written and several counties match"
ROAD_NOT_FOUND = "区县内无此道路 / road not found in the county"
ROAD_AMBIGUOUS = "道路名有歧义 / road name fits several roads in the county"
NUMBER_NOT_FOUND = "标准地址库无此门牌号 / house number not in the standard address library"
DUPLICATE_STANDARD = "多个标准地址门牌相同 / several standard addresses share this house number"

# Traditional and variant characters seen in typed addresses.
_VARIANTS = str.maketrans(
    {
        "號": "号",
        "區": "区",
        "縣": "县",
        "鎮": "镇",
        "門": "门",
        "棟": "栋",
        "樓": "楼",
        "單": "单",
        "—": "-",
        "–": "-",
        "‐": "-",
        "−": "-",
    }  # fmt: skip
)
# Whitespace and punctuation carry no address information (hyphens do: 12-3号).
_NOISE = re.compile(r"[\s,.;:!?'\"`，。、；：！？“”‘’()（）\[\]【】《》<>{}·•_/\\|]+")
_NUMERALS = "零〇一二两三四五六七八九十百千"
_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6,
           "七": 7, "八": 8, "九": 9}  # fmt: skip
_UNITS = {"十": 10, "百": 100, "千": 1000}
# Road, then the house number before 号 (not 号楼/号院: a building, not a doorplate).
_HOUSE = re.compile(rf"(?P<road>.*?)(?P<number>[0-9]+|[{_NUMERALS}]+)号(?![楼院])(?P<rest>.*)")
# A bare number ending the text: 解放路12.
_TRAILING_NUMBER = re.compile(r"(?P<road>\D+)(?P<number>[0-9]+)")
_STANDARD_NUMBER = re.compile(rf"(?P<number>[0-9]+|[{_NUMERALS}]+)号?")


@dataclass(frozen=True)
class StandardAddress:
    """One doorplate of the standard address library (bronze.standard_address)."""

    address_id: str
    full_address: str
    division_code: str
    road: str
    house_number: str


@dataclass(frozen=True)
class Match:
    """The standard address a text names, how it was found, or why none was."""

    address_id: str | None
    division_code: str | None
    method: str
    score: float
    reason: str | None


def normalise(text: str) -> str:
    """Half-width, simplified variant characters, no whitespace or punctuation."""
    return _NOISE.sub("", unicodedata.normalize("NFKC", text).translate(_VARIANTS))


def _to_int(number: str) -> int | None:
    """Arabic digits, 十二 / 一百零五 (positional) or 三零五 (digit by digit)."""
    if number.isascii():
        return int(number)
    if not any(c in _UNITS for c in number):
        return int("".join(str(_DIGITS[c]) for c in number))
    total, current, last_unit = 0, 0, 10_000
    for char in number:
        if char in _DIGITS:
            current = _DIGITS[char]
        else:
            unit = _UNITS[char]
            if unit >= last_unit:
                return None  # 十十, 十百: not a number
            total += (current or 1) * unit
            current, last_unit = 0, unit
    return total + current


def _road_stem(road: str) -> str:
    for suffix in ROAD_SUFFIXES:
        if road.endswith(suffix):
            return road[: -len(suffix)]
    return road


def reference_divisions() -> list[dict[str, str]]:
    """GB/T 2260 rows of the reference data, each retired one with its ``current_code``."""
    from datong.reference import division_changes, load_divisions

    current = {c.retired_code: c.current_code for c in division_changes()}
    return [
        {
            "division_code": d.code,
            "name": d.name,
            "level": d.level,
            "parent_code": d.parent_code or "",
            "valid_to": "" if d.valid_to is None else d.valid_to.isoformat(),
            "current_code": current.get(d.code, d.code),
        }
        for d in load_divisions()
    ]


class _Divisions:
    """County and prefecture names (current and retired) to current codes."""

    def __init__(self, rows: Iterable[dict[str, str]]):
        rows = list(rows)
        self.current = {
            r["division_code"]: r.get("current_code") or r["division_code"] for r in rows
        }
        parents = {r["parent_code"] for r in rows if r.get("parent_code")}
        self.names: dict[str, tuple[str, str]] = {}  # name -> (level, current code)
        self.prefecture_of: dict[str, str] = {}  # current county -> its prefecture
        clashes = set()

        def add(name: str, level: str, code: str) -> None:
            if self.names.setdefault(name, (level, code)) != (level, code):
                clashes.add(name)  # one name, two divisions: the name decides nothing

        for row in rows:
            code, name = row["division_code"], row["name"]
            if row["level"] == "county":
                add(name, "county", self.current[code])
                if not row.get("valid_to"):
                    self.prefecture_of[code] = row["parent_code"]
            elif row["level"] == "prefecture" and code not in parents:
                # 仙桃市, 潜江市, 天门市, 神农架林区: county-level units under the province.
                add(name, "county", code)
                self.prefecture_of[code] = code
            elif row["level"] == "prefecture":
                add(name, "prefecture", code)
                if name.endswith("自治州"):
                    add(name[:2] + "州", "prefecture", code)  # 恩施州
        for name in clashes:
            del self.names[name]
        self.counties_of: dict[str, list[str]] = {}
        for county, prefecture in sorted(self.prefecture_of.items()):
            self.counties_of.setdefault(prefecture, []).append(county)
        # 武汉江岸区: a prefecture's short name, trusted only when a county name follows.
        self.short_prefectures = {
            name[:2]: code
            for name, (level, code) in self.names.items()
            if level == "prefecture" and len(name) > 2
        }
        # By first character, longest first: one or two names to try at any position.
        self.by_first: dict[str, list[tuple[str, str, str]]] = {}
        for name, (level, code) in sorted(self.names.items(), key=lambda n: -len(n[0])):
            self.by_first.setdefault(name[0], []).append((name, level, code))

    def name_at(self, text: str, start: int) -> tuple[str, str, int] | None:
        """The longest division name at ``start``: (level, current code, length)."""
        for name, level, code in self.by_first.get(text[start : start + 1], ()):
            if text.startswith(name, start):
                return level, code, len(name)
        return None

    def parse(self, text: str) -> tuple[str | None, str | None, str]:
        """(prefecture, county, remainder) of a normalised address."""
        start = next((len(p) for p in PROVINCE_NAMES if text.startswith(p)), 0)
        prefecture = county = None
        found = self.name_at(text, start)
        if found is None and text[start : start + 2] in self.short_prefectures:
            following = self.name_at(text, start + 2)
            if following and following[0] == "county":
                prefecture = self.short_prefectures[text[start : start + 2]]
                start, found = start + 2, following
        elif found and found[0] == "prefecture":
            prefecture, start = found[1], start + found[2]
            found = self.name_at(text, start)
        if found and found[0] == "county":
            county, start = found[1], start + found[2]
        return prefecture, county, text[start:]


# A house number held by several standard addresses: matching it would be a guess.
_Doorplates = dict[int, str | None]


class AddressIndex:
    """The standard address library by county, road and house number."""

    def __init__(self, divisions: _Divisions):
        self.divisions = divisions
        self.roads: dict[str, dict[str, _Doorplates]] = {}  # county -> road -> number
        # Standard text -> (address_id, county); None when several addresses share it.
        self.exact: dict[str, tuple[str, str] | None] = {}
        self.stems: dict[str, dict[str, list[str]]] = {}  # county -> road stem -> roads
        self.unindexed = 0  # standard addresses whose house number could not be read

    @classmethod
    def build(
        cls,
        addresses: Iterable[StandardAddress],
        divisions: Iterable[dict[str, str]] | None = None,
    ) -> AddressIndex:
        """Index ``addresses``; ``divisions`` default to the GB/T 2260 reference data."""
        index = cls(_Divisions(reference_divisions() if divisions is None else divisions))
        current = index.divisions.current
        exact = index.exact
        for address in addresses:
            county = current.get(address.division_code, address.division_code)
            text = address.full_address
            exact[text] = None if text in exact else (address.address_id, county)
            number = _STANDARD_NUMBER.fullmatch(normalise(address.house_number))
            value = _to_int(number["number"]) if number else None
            if value is None:
                index.unindexed += 1
                continue
            road = normalise(address.road)
            doorplates = index.roads.setdefault(county, {}).setdefault(road, {})
            doorplates[value] = None if value in doorplates else address.address_id
        for county, roads in index.roads.items():
            stems = index.stems.setdefault(county, {})
            for road in roads:
                stems.setdefault(_road_stem(road), []).append(road)
        return index

    def match(self, text: str | None, division_hint: str | None = None) -> Match:
        """The standard address ``text`` names; ``division_hint`` fills a missing county."""
        if not isinstance(text, str) or not text.strip():
            return _unmatched(EMPTY)
        raw = text.strip()
        if raw in self.exact:  # most registers copy the standard text: no parsing
            found = self.exact[raw]
            if found is None:
                return _unmatched(DUPLICATE_STANDARD)
            return Match(found[0], found[1], "exact", 1.0, None)
        prefecture, county, remainder = self.divisions.parse(normalise(raw))
        house = _HOUSE.fullmatch(remainder) or _TRAILING_NUMBER.fullmatch(remainder)
        number = _to_int(house["number"]) if house else None
        if house is None or number is None:
            return _unmatched(NO_HOUSE_NUMBER)
        road = house["road"]
        if not road:
            return _unmatched(NO_ROAD)
        if county is None:
            hint = division_hint if isinstance(division_hint, str) and division_hint else None
            return self._without_county(prefecture, road, number, hint)
        if prefecture and self.divisions.prefecture_of.get(county) != prefecture:
            return _unmatched(COUNTY_NOT_IN_PREFECTURE)
        resolved, reason = self._road(county, road)
        if resolved is None:
            return _unmatched(reason)
        doorplates = self.roads[county][resolved]
        if number not in doorplates:
            return _unmatched(NUMBER_NOT_FOUND)
        address_id = doorplates[number]
        if address_id is None:
            return _unmatched(DUPLICATE_STANDARD)
        if resolved == road:
            return Match(address_id, county, "normalised", SCORE_NORMALISED, None)
        if _road_stem(resolved) == _road_stem(road):
            return Match(address_id, county, "fuzzy_road", SCORE_ROAD_SUFFIX, None)
        score = fuzz.ratio(f"{road}{number}号", f"{resolved}{number}号") / 100
        if score < FUZZY_MIN_SCORE:
            return _unmatched(ROAD_NOT_FOUND)
        return Match(address_id, county, "fuzzy_road", round(score, 3), None)

    def _road(self, county: str, road: str) -> tuple[str | None, str]:
        """The county's road ``road`` names exactly, by another suffix, or with one typo."""
        roads = self.roads.get(county)
        if not roads:
            return None, ROAD_NOT_FOUND
        if road in roads:
            return road, ""
        stem = _road_stem(road)
        same_stem = self.stems[county].get(stem) if stem else None
        if same_stem:
            return (same_stem[0], "") if len(same_stem) == 1 else (None, ROAD_AMBIGUOUS)
        if len(road) < FUZZY_MIN_ROAD_LENGTH:
            return None, ROAD_NOT_FOUND
        # Substitutions only: an extra or missing character (解放路附 for 解放路) is a
        # different text, not a typo of this road.
        close = process.extract(
            road,
            [r for r in roads if len(r) == len(road)],
            scorer=Levenshtein.distance,
            score_cutoff=1,
            limit=None,
        )
        if len(close) == 1:
            return close[0][0], ""
        return None, ROAD_AMBIGUOUS if close else ROAD_NOT_FOUND

    def _without_county(
        self, prefecture: str | None, road: str, number: int, hint: str | None
    ) -> Match:
        """Exact road and number in the hinted county, or in exactly one of the prefecture's."""
        divisions = self.divisions
        hinted = divisions.current.get(hint, hint) if hint else None
        hinted_prefecture = divisions.prefecture_of.get(hinted or "")
        if hinted_prefecture and prefecture in (None, hinted_prefecture):
            counties = [hinted or ""]
        elif prefecture or hinted in divisions.counties_of:
            counties = divisions.counties_of.get(prefecture or hinted or "", [])
        else:
            return _unmatched(NO_COUNTY)
        found = [
            (county, self.roads[county][road][number])
            for county in counties
            if number in self.roads.get(county, {}).get(road, {})
        ]
        if not found:
            road_known = any(road in self.roads.get(c, {}) for c in counties)
            return _unmatched(NUMBER_NOT_FOUND if road_known else ROAD_NOT_FOUND)
        if len(found) > 1:
            return _unmatched(SEVERAL_COUNTIES)
        county, address_id = found[0]
        if address_id is None:
            return _unmatched(DUPLICATE_STANDARD)
        return Match(address_id, county, "no_division", SCORE_NO_DIVISION, None)


def _unmatched(reason: str) -> Match:
    return Match(None, None, "unmatched", 0.0, reason)


def match_frame(
    frame: pd.DataFrame,
    index: AddressIndex,
    text_column: str = "address",
    hint_column: str | None = None,
) -> pd.DataFrame:
    """``frame`` plus its standard address: address_id, matched_division_code, match_*.

    Each distinct (text, hint) is matched once: registers repeat addresses, and this runs
    inside Spark's mapInPandas on every batch.
    """
    texts = frame[text_column].tolist()
    hints = frame[hint_column].tolist() if hint_column else [None] * len(texts)
    cache: dict[tuple[object, object], Match] = {}
    matches = []
    for key in zip(texts, hints, strict=True):
        found = cache.get(key)
        if found is None:
            hint = str(key[1]) if isinstance(key[1], str | int) else None
            found = cache[key] = index.match(key[0] if isinstance(key[0], str) else None, hint)
        matches.append(found)
    return frame.assign(
        address_id=[m.address_id for m in matches],
        matched_division_code=[m.division_code for m in matches],
        match_method=[m.method for m in matches],
        match_score=[m.score for m in matches],
        match_reason=[m.reason for m in matches],
    )

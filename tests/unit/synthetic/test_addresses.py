"""Standard addresses lie inside their county; applicants type them in realistic variants."""

from __future__ import annotations

import random

from datong.contracts import load_resources
from synthetic.addresses import (
    NO_HOUSE_NUMBER_SHARE,
    VERBATIM_SHARE,
    applicant_address,
    inside,
    point_elsewhere,
    point_in_division,
)
from synthetic.world import Address, Place, provincial_places

from .conftest import read_records, truth

PLACES = {p.code: p for p in provincial_places()}


def _address(place: Place, serial: int) -> Address:
    prefecture = place.prefecture_name if place.prefecture != place.code else ""
    return Address(
        f"{place.code}{serial:012d}",
        f"湖北省{prefecture}{place.name}解放大道{serial % 999 + 1}号",
        place.code,
        "解放大道",
        f"{serial % 999 + 1}号",
        place.longitude,
        place.latitude,
    )


def _typed(place: Place, serial: int) -> str:
    return applicant_address(_address(place, serial), place, random.Random(f"t:{serial}"))


def test_variants_keep_the_road_and_mostly_the_standard_text():
    places = list(PLACES.values())
    typed = [(_address(places[i % len(places)], i), _typed(places[i % len(places)], i))
             for i in range(20_000)]  # fmt: skip
    verbatim = sum(text == address.full_address for address, text in typed) / len(typed)
    no_number = sum(address.house_number not in text for address, text in typed) / len(typed)
    assert abs(verbatim - VERBATIM_SHARE) < 0.02
    assert abs(no_number - NO_HOUSE_NUMBER_SHARE) < 0.004
    for address, text in typed:
        assert text == text.strip() and "\u3000" not in text and len(text) <= 200
        assert address.road in text
    kinds = {
        "no province": sum(not t.startswith("湖北省") for _, t in typed),
        "spaces": sum(" " in t for _, t in typed),
        "details": sum(t.endswith(("室", "座", "楼")) for _, t in typed),
        "no prefecture": sum(
            PLACES[a.division_code].prefecture_name not in t
            for a, t in typed
            if PLACES[a.division_code].prefecture != a.division_code
        ),
    }
    assert all(count > 0.03 * len(typed) for count in kinds.values()), kinds


def test_variants_are_deterministic_and_use_retired_county_names():
    place = PLACES["420304"]  # 郧阳区, 郧县 until 2014
    assert [_typed(place, i) for i in range(50)] == [_typed(place, i) for i in range(50)]
    assert any("郧县" in _typed(place, i) for i in range(200))
    assert not any("郧县" in _typed(PLACES["420302"], i) for i in range(200))


def test_points_are_inside_their_county_and_offsets_kept_when_possible():
    rng = random.Random(1)
    for place in PLACES.values():
        for _ in range(200):
            east, north = rng.uniform(-0.02, 0.02), rng.uniform(-0.02, 0.02)
            longitude, latitude = point_in_division(place, east, north)
            assert inside(place.code, longitude, latitude), place.name
            plain = (round(place.longitude + east, 6), round(place.latitude + north, 6))
            if inside(place.code, *plain):
                assert (longitude, latitude) == plain


def test_point_elsewhere_lies_in_another_county():
    rng = random.Random(2)
    for place in PLACES.values():
        other, longitude, latitude = point_elsewhere(list(PLACES.values()), place.code, rng)
        assert other != place.code
        assert inside(other, longitude, latitude)
        assert not inside(place.code, longitude, latitude)


def test_delivered_points_outside_their_county_are_exactly_the_recorded_conflicts(
    noisy_province,
):
    out, manifest = noisy_province
    report = next(r for r in manifest.files if r.resource == "bronze.standard_address")
    assert not report.failure
    touched = {e["record"] for e in truth(out, 1, "errors.jsonl") if e["file"] == report.path}
    names = [e.name for e in load_resources()["bronze.standard_address"].elements]
    outside = set()
    for number, record in enumerate(read_records(out / report.path, "csv", report.encoding), 1):
        if number in touched:
            continue
        row = dict(zip(names, record, strict=True))
        if not inside(row["division_code"], float(row["longitude"]), float(row["latitude"])):
            outside.add((row["address_id"], f"{row['longitude']},{row['latitude']}"))
    recorded = {
        (c["subject"], c["value"])
        for c in truth(out, 1, "conflicts.jsonl")
        if c["kind"] == "point_outside_division"
    }
    assert outside and outside <= recorded
    assert len(recorded - outside) <= len(touched)

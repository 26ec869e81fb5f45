"""Where standard addresses lie, and how applicants type them on a registration form.

Standard addresses (标准地址) get coordinates inside their county's boundary (the synthetic
polygons of ``schemas/reference/gbt2260_hubei_boundaries.csv``). Legal-person registers
hold the address as the applicant typed it: mostly the standard text, otherwise without
湖北省 or the prefecture, with the county's name before a reform (郧县), building and room
details, or spaces; a few lack the house number and cannot be matched at all.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING

import shapely

if TYPE_CHECKING:
    from synthetic.world import Address, Place

#: Share of legal-person addresses typed exactly as the standard address.
VERBATIM_SHARE = 0.70
#: Share typed without the house number (unmatchable; the matcher must say why).
NO_HOUSE_NUMBER_SHARE = 0.01
# Coordinates are rounded like surveyed ones: 6 decimals, about 0.1 m.
_DECIMALS = 6


@cache
def _boundaries() -> dict[str, shapely.Geometry]:
    """Prepared boundary polygons of the current divisions (prepared: fast point tests)."""
    from datong.reference import load_boundaries

    shapes = {}
    for code, text in load_boundaries().items():
        shape = shapely.from_wkt(text)
        shapely.prepare(shape)
        shapes[code] = shape
    return shapes


def inside(division_code: str, longitude: float, latitude: float) -> bool:
    """Whether the point lies inside the division's boundary (True when none is known)."""
    shape = _boundaries().get(division_code)
    return shape is None or bool(shapely.contains_xy(shape, longitude, latitude))


def point_in_division(place: Place, east: float, north: float) -> tuple[float, float]:
    """The county seat moved by (east, north) degrees, the offset halved until inside.

    Points already inside keep exactly the seat plus the offset, so only the few that fell
    outside the boundary move, and no random draw is added.
    """
    longitude, latitude = place.longitude, place.latitude
    shape = _boundaries().get(place.code)
    if shape is not None and not shapely.contains_xy(shape, longitude, latitude):
        anchor = shape.representative_point()
        longitude, latitude = anchor.x, anchor.y
    for _ in range(12):
        point = (round(longitude + east, _DECIMALS), round(latitude + north, _DECIMALS))
        if inside(place.code, *point):
            return point
        east, north = east / 2, north / 2
    return round(longitude, _DECIMALS), round(latitude, _DECIMALS)


def point_elsewhere(
    places: Sequence[Place], division_code: str, rng: random.Random
) -> tuple[str, float, float]:
    """A point inside another county than ``division_code``: (that county, lon, lat)."""
    other = rng.choice([p for p in places if p.code != division_code])
    longitude, latitude = point_in_division(
        other, rng.uniform(-0.01, 0.01), rng.uniform(-0.01, 0.01)
    )
    return other.code, longitude, latitude


@cache
def _retired_names() -> dict[str, str]:
    """Current county code to its name before a reform (郧阳区 was 郧县)."""
    from datong.reference import division_changes

    return {change.current_code: change.retired_name for change in division_changes()}


def _details(rng: random.Random) -> str:
    """Building, unit, floor or room after the house number, as forms ask for them."""
    building, unit, floor = rng.randint(1, 30), rng.randint(1, 6), rng.randint(1, 33)
    room = f"{floor}{rng.randint(1, 4):02d}"
    return rng.choice(
        [
            f"{building}栋{unit}单元{room}室",
            f"{building}栋{room}室",
            f"{rng.choice('ABCD')}座",
            f"{rng.choice('ABCD')}座{room}室",
            f"{floor}楼",
            f"{room}室",
        ]
    )


def applicant_address(address: Address, place: Place, rng: random.Random) -> str:
    """The address as an applicant typed it on a legal-person registration form."""
    roll = rng.random()
    if roll < VERBATIM_SHARE:
        return address.full_address
    prefecture = place.prefecture_name if place.prefecture != place.code else ""
    retired = _retired_names().get(place.code)
    kinds = ["drop_province", "details", "spaces"]
    kinds += ["drop_prefecture"] if prefecture else []
    kinds += ["retired_name"] if retired else []
    # One change for sure, any other now and then; a retired county name half the time.
    primary = rng.choice(kinds)
    chosen = {k for k in kinds if k == primary or rng.random() < 0.25}
    if retired and rng.random() < 0.5:
        chosen.add("retired_name")
    segments = [
        "" if "drop_province" in chosen else "湖北省",
        "" if "drop_prefecture" in chosen else prefecture,
        retired if "retired_name" in chosen and retired else place.name,
        address.road,
        address.house_number,
        _details(rng) if "details" in chosen else "",
    ]
    if roll < VERBATIM_SHARE + NO_HOUSE_NUMBER_SHARE:
        segments[4] = ""
    segments = [s for s in segments if s]
    if "spaces" not in chosen:
        return "".join(segments)
    gaps = [rng.random() < 0.5 for _ in segments[1:]]
    gaps[rng.randrange(len(gaps))] = True
    return segments[0] + "".join(
        (" " if gap else "") + segment for gap, segment in zip(gaps, segments[1:], strict=True)
    )

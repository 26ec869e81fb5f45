"""Build the GB/T 2260 reference tables for Hubei (42) from the data file the cpca package ships.

Writes, under ``schemas/reference/`` (or ``--out DIR``):

* ``gbt2260_hubei.csv``            divisions: province, 17 prefecture-level units, county level
* ``gbt2260_hubei_changes.csv``    retired codes and their successors (hand-curated, see CHANGES)
* ``gbt2260_hubei_boundaries.csv`` synthetic simplified polygons (WKT), current divisions only

Deterministic: the same cpca data file gives byte-identical output. Run with
``.venv/bin/python scripts/build_hubei_reference.py``. See ``schemas/reference/SOURCES.md``.

Boundaries are synthetic: a hand-drawn 40-vertex outline of Hubei, cut into the Voronoi cells of
the county-level seats (county-level units plus the four province-administered units), each
prefecture-level polygon being the union of its counties' cells and the province the union of
the prefectures. Coordinates are snapped to a 1e-5 degree grid.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.metadata
import importlib.util
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import shapely
from shapely.geometry import MultiPoint, MultiPolygon, Point, Polygon
from shapely.ops import voronoi_diagram

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "schemas" / "reference"

PROVINCE_CODE = "420000"
#: Province-administered county-level units (省直辖县级行政区划): modelled as prefecture-level
#: children of the province, since they have no prefecture above them.
PROVINCE_ADMINISTERED = ("429004", "429005", "429006", "429021")
#: cpca placeholder rows that are not divisions.
PLACEHOLDER_NAMES = ("市辖区", "省直辖县级行政区划")

#: Start of the recorded history: a valid_from equal to this means "in force on or before it".
HISTORY_START = "2014-01-01"
SOURCE_CPCA = "cpca {version} resources/adcodes.csv"

GRID = 1e-5  # degrees; output coordinates have at most 5 decimals
SEAT_MARGIN = 0.05  # degrees every seat must lie inside the outline, away from its edge

#: Simplified outline of Hubei (lon, lat), hand-drawn from the general shape of the province:
#: Yunxi in the north-west, the Dabie mountains in the north-east, Huangmei in the east, the
#: Yangtze / Hunan border in the south, Laifeng in the south-west and Lichuan in the west.
#: Not survey data.
OUTLINE: tuple[tuple[float, float], ...] = (
    (110.55, 33.26),
    (111.05, 33.18),
    (111.45, 32.85),
    (112.10, 32.42),
    (112.95, 32.38),
    (113.35, 32.20),
    (113.75, 31.95),
    (114.15, 31.85),
    (114.60, 31.55),
    (115.10, 31.60),
    (115.60, 31.15),
    (116.05, 30.95),
    (116.12, 30.05),
    (115.90, 29.80),
    (115.55, 29.78),
    (115.35, 29.45),
    (114.65, 29.25),
    (113.90, 29.02),
    (113.65, 29.30),
    (113.55, 29.55),
    (112.80, 29.50),
    (112.40, 29.42),
    (111.55, 29.80),
    (111.05, 29.85),
    (110.45, 29.70),
    (109.55, 29.40),
    (109.45, 29.05),
    (109.10, 29.25),
    (108.80, 29.55),
    (108.45, 29.95),
    (108.37, 30.30),
    (108.60, 30.65),
    (109.55, 30.85),
    (110.05, 31.05),
    (110.10, 31.35),
    (109.75, 31.60),
    (109.50, 31.95),
    (109.20, 32.15),
    (109.45, 32.50),
    (110.15, 32.95),
)


@dataclass(frozen=True)
class Change:
    retired_code: str
    retired_name: str
    current_code: str
    current_name: str
    change_date: str
    change_kind: str


#: Real GB/T 2260 changes in Hubei with a retired code. Only the year of each change is asserted;
#: it is stored as 31 December of that year (valid_to of the retired code, valid_from of the new).
CHANGES: tuple[Change, ...] = (
    Change("420321", "郧县", "420304", "郧阳区", "2014-12-31", "county_to_district"),
    Change("420821", "京山县", "420882", "京山市", "2018-12-31", "county_to_city"),
    Change("421023", "监利县", "421088", "监利市", "2020-12-31", "county_to_city"),
)


@dataclass(frozen=True)
class Row:
    division_code: str
    name: str
    level: str
    parent_code: str
    valid_from: str
    valid_to: str
    longitude: str
    latitude: str
    source: str

    @property
    def current(self) -> bool:
        return self.valid_to == ""

    def seat(self) -> Point:
        return Point(float(self.longitude), float(self.latitude))


DIVISION_COLUMNS = [
    "division_code",
    "name",
    "level",
    "parent_code",
    "valid_from",
    "valid_to",
    "longitude",
    "latitude",
    "source",
]


def cpca_data_file() -> Path:
    """The installed cpca's adcodes.csv, found without importing cpca (it imports pkg_resources)."""
    spec = importlib.util.find_spec("cpca")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("cpca is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "resources" / "adcodes.csv"


def classify(code: str) -> tuple[str, str]:
    """(level, parent_code) of a 6-digit Hubei code."""
    if code == PROVINCE_CODE:
        return "province", ""
    if code.endswith("00") or code in PROVINCE_ADMINISTERED:
        return "prefecture", PROVINCE_CODE
    return "county", code[:4] + "00"


def extract(path: Path, source: str) -> tuple[list[Row], dict[str, int]]:
    """Hubei rows of cpca's adcodes.csv, placeholders and township rows dropped."""
    stats = {"hubei_rows": 0, "township_rows": 0, "placeholder_rows": 0}
    rows: list[Row] = []
    with path.open(encoding="utf-8", newline="") as handle:
        for record in csv.DictReader(handle):
            adcode = record["adcode"]
            if not adcode.startswith("42"):
                continue
            stats["hubei_rows"] += 1
            if len(adcode) != 12 or not adcode.isdigit():
                raise SystemExit(f"unexpected adcode {adcode!r}")
            if adcode[6:] != "000000":
                stats["township_rows"] += 1
                continue
            if record["name"] in PLACEHOLDER_NAMES:
                stats["placeholder_rows"] += 1
                continue
            code = adcode[:6]
            if not record["longitude"] or not record["latitude"]:
                raise SystemExit(f"{code} {record['name']} has no seat coordinates")
            level, parent = classify(code)
            rows.append(
                Row(
                    code,
                    record["name"],
                    level,
                    parent,
                    HISTORY_START,
                    "",
                    record["longitude"],
                    record["latitude"],
                    source,
                )
            )
    return rows, stats


def apply_changes(rows: list[Row], source: str) -> tuple[list[Row], list[str]]:
    """Reconcile cpca's snapshot with CHANGES; returns the rows and a note per change."""
    by_code = {row.division_code: row for row in rows}
    notes: list[str] = []
    for change in CHANGES:
        retired = by_code.get(change.retired_code)
        current = by_code.get(change.current_code)
        if retired is not None and retired.name != change.retired_name:
            raise SystemExit(f"cpca names {change.retired_code} {retired.name!r}")
        if current is not None and current.name != change.current_name:
            raise SystemExit(f"cpca names {change.current_code} {current.name!r}")
        if current is not None and retired is None:
            # cpca postdates the change: add the retired code, with no seat coordinates.
            level, parent = classify(change.retired_code)
            by_code[change.retired_code] = Row(
                change.retired_code,
                change.retired_name,
                level,
                parent,
                HISTORY_START,
                change.change_date,
                "",
                "",
                f"GB/T 2260 change {change.change_date[:4]} (code not in cpca)",
            )
            by_code[change.current_code] = replace(current, valid_from=change.change_date)
            notes.append(f"{change.retired_code} {change.retired_name}: cpca postdates, added")
        elif retired is not None and current is None:
            # cpca predates the change: retire the code, add its successor at the same seat.
            by_code[change.retired_code] = replace(retired, valid_to=change.change_date)
            level, parent = classify(change.current_code)
            by_code[change.current_code] = Row(
                change.current_code,
                change.current_name,
                level,
                parent,
                change.change_date,
                "",
                retired.longitude,
                retired.latitude,
                f"GB/T 2260 change {change.change_date[:4]}; seat from {source} "
                f"{change.retired_code}",
            )
            notes.append(f"{change.current_code} {change.current_name}: cpca predates, added")
        else:
            raise SystemExit(f"cpca has both or neither of {change}")
    return sorted(by_code.values(), key=lambda row: row.division_code), notes


def as_multipolygon(geom: shapely.Geometry) -> MultiPolygon:
    polygons = [part for part in shapely.get_parts(geom) if isinstance(part, Polygon)]
    polygons = [part for part in polygons if not part.is_empty]
    return shapely.normalize(MultiPolygon(polygons))


def build_boundaries(rows: list[Row]) -> tuple[dict[str, MultiPolygon], list[str]]:
    """Polygons of every current division, keyed by code; plus notes for the report."""
    outline = Polygon(OUTLINE)
    if not outline.is_valid:
        raise SystemExit("OUTLINE is not a valid polygon")
    current = [row for row in rows if row.current]
    for row in current:
        seat = row.seat()
        if not outline.contains(seat) or outline.exterior.distance(seat) < SEAT_MARGIN:
            raise SystemExit(f"seat of {row.division_code} {row.name} is not inside OUTLINE")

    prefectures = [row for row in current if row.level == "prefecture"]
    counties = [row for row in current if row.level == "county"]
    children: dict[str, list[Row]] = {row.division_code: [] for row in prefectures}
    for row in counties:
        children[row.parent_code].append(row)
    # Voronoi generators: every county-level seat, and the seat of each prefecture-level unit
    # that has no county-level children (the four province-administered units).
    generators = counties + [row for row in prefectures if not children[row.division_code]]
    seats = [row.seat() for row in generators]
    if len({(point.x, point.y) for point in seats}) != len(seats):
        raise SystemExit("two generators share a seat")
    frame = outline.envelope.buffer(1.0)
    cells = list(shapely.get_parts(voronoi_diagram(MultiPoint(seats), envelope=frame)))
    outline_cells: dict[str, MultiPolygon] = {}
    for row, seat in zip(generators, seats, strict=True):
        (cell,) = [cell for cell in cells if cell.contains(seat)]
        clipped = shapely.intersection(cell, outline, grid_size=GRID)
        outline_cells[row.division_code] = as_multipolygon(clipped)

    shapes: dict[str, MultiPolygon] = {}
    for prefecture in prefectures:
        code = prefecture.division_code
        if children[code]:
            for child in children[code]:
                shapes[child.division_code] = outline_cells[child.division_code]
            parts = [shapes[child.division_code] for child in children[code]]
            shapes[code] = as_multipolygon(shapely.union_all(parts, grid_size=GRID))
        else:
            shapes[code] = outline_cells[code]
    province_parts = [shapes[row.division_code] for row in prefectures]
    shapes[PROVINCE_CODE] = as_multipolygon(shapely.union_all(province_parts, grid_size=GRID))
    return shapes, diagnose(rows, shapes, outline)


def diagnose(rows: list[Row], shapes: dict[str, MultiPolygon], outline: Polygon) -> list[str]:
    """Check the invariants the tests assert; return notes for the report."""
    current = {row.division_code: row for row in rows if row.current}
    notes: list[str] = []
    for code, row in current.items():
        shape = shapes[code]
        if shape.is_empty or not shape.is_valid:
            raise SystemExit(f"{code} polygon is empty or invalid")
        if not shape.contains(row.seat()):
            notes.append(f"seat of {code} {row.name} is outside its polygon")
        if row.parent_code and not shapes[row.parent_code].buffer(1e-9).contains(shape):
            raise SystemExit(f"{code} is not within its parent {row.parent_code}")
        if len(shape.geoms) > 1:
            notes.append(f"{code} {row.name} has {len(shape.geoms)} parts")
        holes = sum(len(part.interiors) for part in shape.geoms)
        if holes:
            notes.append(f"{code} {row.name} has {holes} holes")
    province = shapes[PROVINCE_CODE]
    prefecture_area = sum(shapes[c].area for c, r in current.items() if r.level == "prefecture")
    notes.append(
        f"province area {province.area:.6f} sq deg (outline {outline.area:.6f}); "
        f"sum of prefecture areas differs by {abs(prefecture_area - province.area):.3g}"
    )

    # What the plain top-down construction (Voronoi of the 17 prefecture seats) would have done.
    prefectures = [row for row in current.values() if row.level == "prefecture"]
    cells = shapely.get_parts(
        voronoi_diagram(
            MultiPoint([row.seat() for row in prefectures]),
            envelope=outline.envelope.buffer(1.0),
        )
    )
    prefecture_cell = {}
    for row in prefectures:
        (cell,) = [cell for cell in cells if cell.contains(row.seat())]
        prefecture_cell[row.division_code] = cell.intersection(outline)
    stray = sorted(
        row.name
        for row in current.values()
        if row.level == "county" and not prefecture_cell[row.parent_code].contains(row.seat())
    )
    notes.append(
        f"top-down alternative: {len(stray)} county seats fall outside their prefecture's "
        f"seat-Voronoi cell ({', '.join(stray)})"
    )
    return notes


def wkt(geom: MultiPolygon) -> str:
    text = shapely.to_wkt(geom, rounding_precision=5, trim=True)
    again = shapely.from_wkt(text)
    if not again.is_valid or again.is_empty or not again.equals(geom):
        raise SystemExit(f"WKT round trip changed {text[:60]}...")
    return text


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)

    data_file = cpca_data_file()
    version = importlib.metadata.version("cpca")
    source = SOURCE_CPCA.format(version=version)
    digest = hashlib.sha256(data_file.read_bytes()).hexdigest()
    rows, stats = extract(data_file, source)
    rows, change_notes = apply_changes(rows, source)
    shapes, geometry_notes = build_boundaries(rows)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    write_csv(
        out / "gbt2260_hubei.csv",
        DIVISION_COLUMNS,
        [[getattr(row, column) for column in DIVISION_COLUMNS] for row in rows],
    )
    write_csv(
        out / "gbt2260_hubei_changes.csv",
        list(Change.__dataclass_fields__),
        [list(vars(change).values()) for change in CHANGES],
    )
    write_csv(
        out / "gbt2260_hubei_boundaries.csv",
        ["division_code", "boundary_wkt"],
        [[code, wkt(shapes[code])] for code in sorted(shapes)],
    )

    current = [row for row in rows if row.current]
    counts = {
        level: sum(row.level == level for row in current)
        for level in ("province", "prefecture", "county")
    }
    report = [
        f"cpca {version} {data_file.name} sha256 {digest}",
        f"hubei rows {stats['hubei_rows']}, township rows dropped {stats['township_rows']}, "
        f"placeholders dropped {stats['placeholder_rows']}",
        f"divisions written {len(rows)} (current {len(current)}: {counts}; "
        f"retired {len(rows) - len(current)})",
        *change_notes,
        f"boundaries written {len(shapes)}",
        *geometry_notes,
    ]
    sys.stdout.write("\n".join(report) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

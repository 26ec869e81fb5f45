"""`datong report geo`: a map (PNG) of persons and legal persons per county.

Reads ``geo.county_summary`` (current counties, their boundary and the subjects placed in
each by address matching) and draws two choropleths side by side with matplotlib's Agg
backend (no display needed). Labels are Chinese when a CJK font is installed
(``scripts/system-deps.sh`` installs WenQuanYi Micro Hei), English otherwise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datong.settings import Settings

log = logging.getLogger(__name__)

CJK_FONTS = ("WenQuanYi Micro Hei", "Noto Sans CJK SC", "Noto Sans CJK JP", "SimHei")


@dataclass(frozen=True)
class CountyCount:
    division_code: str
    name: str
    persons: int
    legal_persons: int
    boundary_wkt: str | None


@dataclass(frozen=True)
class MapReport:
    path: Path
    counties: int
    persons: int
    legal_persons: int
    width: int
    height: int


def _font() -> str | None:
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    if "WenQuanYi Micro Hei" not in installed:
        for path in Path("/usr/share/fonts").glob("**/wqy-microhei.ttc"):
            font_manager.fontManager.addfont(str(path))
        installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONTS if name in installed), None)


def draw(counties: list[CountyCount], path: Path, title: str = "湖北省") -> MapReport:
    """Draw the two choropleths to ``path`` (PNG); pure apart from the file written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shapely
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Polygon

    font = _font()
    chinese = font is not None
    if font:
        plt.rcParams["font.sans-serif"] = [font]
    figure, axes = plt.subplots(1, 2, figsize=(14, 6.5), dpi=100)
    panels = (("persons", "人口（人）" if chinese else "persons"),
              ("legal_persons", "法人（家）" if chinese else "legal persons"))  # fmt: skip
    for axis, (field, label) in zip(axes, panels, strict=True):
        patches, values = [], []
        for county in counties:
            if not county.boundary_wkt:
                continue
            shape = shapely.from_wkt(county.boundary_wkt)
            for part in getattr(shape, "geoms", [shape]):
                patches.append(Polygon(list(part.exterior.coords), closed=True))
                values.append(getattr(county, field))
        collection = PatchCollection(patches, cmap="YlOrRd", edgecolor="#555555", linewidth=0.3)
        collection.set_array(values)
        axis.add_collection(collection)
        axis.autoscale_view()
        axis.set_aspect("equal")
        axis.set_axis_off()
        total = sum(getattr(c, field) for c in counties)
        axis.set_title(f"{title} {label} {total:,}" if chinese else f"{label}: {total:,}")
        figure.colorbar(collection, ax=axis, shrink=0.7)
    heading = "各县（市、区）人口与法人分布" if chinese else "Persons and legal persons per county"
    figure.suptitle(heading)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    width, height = (int(v) for v in figure.get_size_inches() * figure.dpi)
    plt.close(figure)
    return MapReport(
        path, len(counties), sum(c.persons for c in counties),
        sum(c.legal_persons for c in counties), width, height,
    )  # fmt: skip


def read_counties(spark: Any, settings: Settings) -> list[CountyCount]:
    from datong import tables

    if not tables.exists(spark, settings, "geo.county_summary"):
        raise FileNotFoundError("geo.county_summary does not exist yet: run `datong build geo`")
    rows = tables.read(spark, settings, "geo.county_summary").collect()
    return [
        CountyCount(
            r["division_code"],
            r["name"],
            int(r["persons"]),
            int(r["legal_persons"]),
            r["boundary_wkt"],
        )  # fmt: skip
        for r in sorted(rows, key=lambda r: r["division_code"])
    ]


def report(spark: Any, settings: Settings, path: Path) -> MapReport:
    return draw(read_counties(spark, settings), path)

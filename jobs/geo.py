"""Geospatial library (空间地理基础库): divisions with history, standard addresses, placement.

Pure transforms over silver and the golden libraries; ``build`` does the I/O:

- ``divisions``: GB/T 2260 divisions with hierarchy, validity and boundary (WKT), each
  retired code mapped to its current one (``division_code_map``, from the standard's change
  list in ``schemas/reference``);
- ``standard_addresses``: the 自然资源 standard addresses with their point (WKT), the current
  division code, and whether the point lies inside the division its code names;
- ``address_match``: the free-text address of every person and legal person matched to a
  standard address (``jobs.address``), placing each in a county; ``unmatched_address`` lists
  those that could not be matched, with the reason;
- ``conflicts``: a point outside its division (自然资源 to correct), or a record whose division
  code disagrees with the standard address its address matched (the record's department);
- ``county_summary``: persons and legal persons per current county, for maps and reports.

Points and polygons are tested with shapely (GEOS) inside Spark's ``mapInPandas``; the
geometries are stored as WKT, which Trino reads with ``ST_GeometryFromText``.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    import pandas as pd
    from pyspark.sql import DataFrame

    from datong.settings import Settings

LIBRARY = "geo"
TABLES = ["geo.division", "geo.division_code_map", "geo.standard_address",
          "geo.address_match", "geo.unmatched_address", "geo.conflict",
          "geo.county_summary"]  # fmt: skip
SOURCES = ["bronze.administrative_division", "bronze.standard_address"]
UPSTREAM = ["population", "legal_person"]
COUNTY = "county"
#: Where each kind of subject's address comes from.
ADDRESS_SOURCES = {
    "person": ("population.person", "person_id"),
    "legal_person": ("legal_person.entity", "credit_code"),
}


# ---- pure transforms -------------------------------------------------------------------


def code_map(spark: Any) -> DataFrame:
    """Retired GB/T 2260 codes and the current code that replaced each."""
    from datong.reference import division_changes

    rows = [
        (c.retired_code, c.retired_name, c.current_code, c.current_name, c.change_date,
         c.change_kind)
        for c in division_changes()
    ]  # fmt: skip
    return spark.createDataFrame(
        rows,
        "retired_code string, retired_name string, current_code string, current_name string, "
        "change_date date, change_kind string",
    )


def divisions(division_rows: DataFrame, codes: DataFrame) -> DataFrame:
    """Every version of every division, with its prefecture and current code."""
    from pyspark.sql import functions as F

    mapped = division_rows.join(
        F.broadcast(codes.select(F.col("retired_code").alias("division_code"), "current_code")),
        "division_code",
        "left",
    )
    prefecture = (
        F.when(F.col("level") == "province", F.lit(None))
        .when(F.col("level") == "prefecture", F.col("division_code"))
        .otherwise(F.concat(F.substring("division_code", 1, 4), F.lit("00")))
    )
    # County level (县级): counties, and the prefecture-level units without counties under
    # them (仙桃、潜江、天门、神农架, administered by the province directly).
    parents = (
        division_rows.where(F.col("parent_code").isNotNull())
        .select(F.col("parent_code").alias("division_code"), F.lit(True).alias("_has_children"))
        .distinct()
    )
    county_level = (F.col("level") == COUNTY) | (
        (F.col("level") == "prefecture") & F.col("_has_children").isNull()
    )
    mapped = mapped.join(F.broadcast(parents), "division_code", "left")
    return mapped.select(
        "division_code", "name", "level", "parent_code", prefecture.alias("prefecture_code"),
        county_level.alias("county_level"),
        "valid_from", "valid_to", F.col("valid_to").isNull().alias("current"),
        F.coalesce("current_code", "division_code").alias("current_code"),
        "longitude", "latitude", "boundary_wkt",
    )  # fmt: skip


def _contains(points: Iterable[pd.DataFrame], boundaries: dict[str, str]) -> Iterator[pd.DataFrame]:
    """Per point: inside its own division's boundary? and the current county containing it."""
    import shapely
    from shapely import STRtree

    codes = sorted(boundaries)
    shapes = [shapely.from_wkt(boundaries[c]) for c in codes]
    for shape in shapes:
        shapely.prepare(shape)
    by_code = dict(zip(codes, shapes, strict=True))
    tree = STRtree(shapes)
    for frame in points:
        geoms = shapely.points(frame["longitude"].astype(float), frame["latitude"].astype(float))
        inside = []
        for code, point in zip(frame["current_division_code"], geoms, strict=True):
            shape = by_code.get(code)
            inside.append(None if shape is None else bool(shape.contains(point)))
        frame["inside_division"] = inside
        point_index, shape_index = tree.query(geoms, predicate="within")
        found: list[str | None] = [None] * len(frame)
        for p, s in zip(point_index, shape_index, strict=True):
            found[p] = found[p] or codes[s]
        frame["containing_division"] = found
        yield frame


def standard_addresses(address_rows: DataFrame, division_rows: DataFrame) -> DataFrame:
    """Standard addresses with point WKT, current division and the point-in-division test."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StructType

    counties = division_rows.where(
        F.col("county_level") & F.col("current") & F.col("boundary_wkt").isNotNull()
    )
    boundaries = {r["division_code"]: r["boundary_wkt"] for r in counties.collect()}
    current = F.broadcast(
        division_rows.select("division_code", F.col("current_code").alias("current_division_code"))
        .dropDuplicates(["division_code"])
    )  # fmt: skip
    located = address_rows.join(current, "division_code", "left").select(
        "address_id", "full_address", "division_code",
        F.coalesce("current_division_code", "division_code").alias("current_division_code"),
        "street", "road", "house_number",
        F.col("longitude").cast("double").alias("longitude"),
        F.col("latitude").cast("double").alias("latitude"),
    )  # fmt: skip
    # A new schema: ``StructType.add`` would change the frame's own (cached) schema.
    schema = StructType([*located.schema.fields]).add("inside_division", "boolean")
    schema = schema.add("containing_division", "string")
    tested = located.mapInPandas(lambda it: _contains(it, boundaries), schema)
    return tested.select(
        "*",
        F.format_string("POINT (%s %s)", F.col("longitude").cast("string"),
                        F.col("latitude").cast("string")).alias("point_wkt"),
    )  # fmt: skip


def point_conflicts(address_table: DataFrame) -> DataFrame:
    """Standard addresses whose point is outside the division their code names."""
    from pyspark.sql import functions as F

    return address_table.where(F.col("inside_division") == F.lit(False)).select(
        F.col("address_id").alias("subject"), F.lit("standard_address").alias("subject_kind"),
        F.lit("coordinates").alias("attribute"), F.lit("point_outside_division").alias("kind"),
        F.lit("silver.administrative_division").alias("source"),
        F.col("current_division_code").alias("source_value"),
        F.lit("silver.standard_address").alias("other_source"),
        F.concat_ws(",", F.col("longitude").cast("string"), F.col("latitude").cast("string"))
        .alias("other_value"),
        F.concat(F.lit("point lies in "), F.coalesce("containing_division", F.lit("no county")))
        .alias("detail"),
        F.lit("natural_resources").alias("department"),
    )  # fmt: skip


def division_conflicts(matches: DataFrame) -> DataFrame:
    """Records whose own division code is not that of the standard address they matched."""
    from pyspark.sql import functions as F

    # A legal person's register is told by its credit code's first character (GB 32100).
    registers = {"9": "market_regulation", "1": "institution_staffing", "5": "civil_affairs"}
    department = F.when(F.col("subject_kind") == "person", F.lit("public_security")).otherwise(
        F.create_map(*[F.lit(x) for pair in registers.items() for x in pair])[
            F.substring("subject_id", 1, 1)
        ]
    )
    return matches.where(
        F.col("address_id").isNotNull()
        & F.col("record_division_code").isNotNull()
        & (F.col("record_division_code") != F.col("division_code"))
    ).select(
        F.col("subject_id").alias("subject"), "subject_kind",
        F.lit("division_code").alias("attribute"), F.lit("division_mismatch").alias("kind"),
        F.col("source").alias("source"), F.col("record_division_code").alias("source_value"),
        F.lit("geo.standard_address").alias("other_source"),
        F.col("division_code").alias("other_value"),
        F.concat(F.lit("address matched "), F.col("address_id")).alias("detail"),
        department.alias("department"),
    )  # fmt: skip


def county_summary(division_rows: DataFrame, matches: DataFrame) -> DataFrame:
    """Persons and legal persons per current county, by the county their address matched."""
    from pyspark.sql import functions as F

    counties = division_rows.where(F.col("county_level") & F.col("current")).select(
        "division_code", "name", "prefecture_code", "boundary_wkt"
    )
    placed = (
        matches.where(F.col("division_code").isNotNull())
        .groupBy("division_code")
        .agg(
            F.sum(F.when(F.col("subject_kind") == "person", 1).otherwise(0)).alias("persons"),
            F.sum(F.when(F.col("subject_kind") == "legal_person", 1).otherwise(0))
            .alias("legal_persons"),
        )
    )  # fmt: skip
    return counties.join(placed, "division_code", "left").select(
        "division_code", "name", "prefecture_code",
        F.coalesce("persons", F.lit(0)).cast("long").alias("persons"),
        F.coalesce("legal_persons", F.lit(0)).cast("long").alias("legal_persons"),
        "boundary_wkt",
    )  # fmt: skip


def subject_addresses(persons: DataFrame, entities: DataFrame) -> DataFrame:
    """(subject_kind, subject_id, source, address, record_division_code) of every subject."""
    from pyspark.sql import functions as F

    def part(frame: DataFrame, kind: str) -> DataFrame:
        table, key = ADDRESS_SOURCES[kind]
        return frame.select(
            F.lit(kind).alias("subject_kind"), F.col(key).alias("subject_id"),
            F.lit(table).alias("source"), "address",
            F.col("division_code").alias("record_division_code"),
        )  # fmt: skip

    return part(persons, "person").unionByName(part(entities, "legal_person"))


def match_addresses(subjects: pd.DataFrame, index: Any) -> pd.DataFrame:
    """Match each subject's address (pure pandas; ``index`` is a ``jobs.address`` index)."""
    from jobs.address import match_frame

    # The record's own division code helps only where the text names no county.
    matched = match_frame(
        subjects, index, text_column="address", hint_column="record_division_code"
    )
    return matched.rename(columns={"matched_division_code": "division_code"})


# ---- I/O -------------------------------------------------------------------------------


def _index(address_table: DataFrame) -> Any:
    from jobs.address import AddressIndex, StandardAddress

    rows = address_table.select(
        "address_id", "full_address", "current_division_code", "road", "house_number"
    ).toLocalIterator()
    return AddressIndex.build(StandardAddress(r[0], r[1], r[2], r[3], r[4]) for r in rows)


def build(spark: Any, settings: Settings, as_of: dt.date) -> dict[str, int]:
    from pyspark.sql import functions as F

    from jobs.derived import from_pandas, gold_or_empty, silver_or_empty, sync_table

    del as_of  # the geospatial library holds no status that depends on the date
    codes = code_map(spark)
    division_rows = divisions(
        silver_or_empty(spark, settings, "bronze.administrative_division"), codes
    ).localCheckpoint()
    address_table = standard_addresses(
        silver_or_empty(spark, settings, "bronze.standard_address"), division_rows
    ).localCheckpoint()
    persons = gold_or_empty(
        spark, settings, "population.person",
        "person_id string, address string, division_code string",
    )  # fmt: skip
    entities = gold_or_empty(
        spark, settings, "legal_person.entity",
        "credit_code string, address string, division_code string",
    )  # fmt: skip
    subjects = subject_addresses(persons, entities).toPandas()
    matched = match_addresses(subjects, _index(address_table))
    matches = from_pandas(
        spark,
        matched,
        "subject_kind string, subject_id string, source string, address string, "
        "record_division_code string, address_id string, division_code string, "
        "match_method string, match_score double, match_reason string",
    ).localCheckpoint()
    conflict_rows = point_conflicts(address_table).unionByName(division_conflicts(matches))
    keys = ["subject_kind", "subject_id"]
    counts = {
        "geo.division": sync_table(
            spark, settings, "geo.division", ["division_code", "valid_from"], division_rows
        ),
        "geo.division_code_map": sync_table(
            spark, settings, "geo.division_code_map", ["retired_code"], codes
        ),
        "geo.standard_address": sync_table(
            spark, settings, "geo.standard_address", ["address_id"], address_table
        ),
        "geo.address_match": sync_table(spark, settings, "geo.address_match", keys, matches),
        "geo.unmatched_address": sync_table(
            spark,
            settings,
            "geo.unmatched_address",
            keys,
            matches.where(F.col("address_id").isNull()),
        ),  # fmt: skip
        "geo.conflict": sync_table(
            spark, settings, "geo.conflict", ["subject_kind", "subject", "kind"], conflict_rows
        ),
        "geo.county_summary": sync_table(
            spark,
            settings,
            "geo.county_summary",
            ["division_code"],
            county_summary(division_rows, matches),
        ),  # fmt: skip
    }
    return counts

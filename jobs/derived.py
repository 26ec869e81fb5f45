"""Shared I/O of the libraries derived from the golden ones (geo, credit, license, materials).

Their tables are functions of silver and the population and legal-person libraries. Each
build computes them and ``sync_table`` MERGEs the result by key: a row whose content did not
change is not rewritten, a new row is inserted, a row that no longer exists is deleted. So
Delta's history and Trino see only what changed, and a full and an incremental build over the
same inputs give identical tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from datong import tables
from datong.contracts import load_resources

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

    from datong.settings import Settings

ROW_HASH = "_row_hash"


def silver_or_empty(spark: SparkSession, settings: Settings, bronze: str) -> DataFrame:
    """The silver table of ``bronze``; empty (with its schema) before its first delivery."""
    from jobs import silver

    name = silver.silver_name(bronze)
    if tables.exists(spark, settings, name):
        return tables.read(spark, settings, name)
    return silver.empty(spark, load_resources()[bronze])


def gold_or_empty(spark: SparkSession, settings: Settings, name: str, schema: str) -> DataFrame:
    """A library table; empty with ``schema`` when its library has not been built."""
    if tables.exists(spark, settings, name):
        return tables.read(spark, settings, name)
    return spark.createDataFrame([], schema)


def from_pandas(spark: SparkSession, frame: pd.DataFrame, schema: str) -> DataFrame:
    """The columns of ``frame`` that the DDL ``schema`` names, as Spark rows; NaN/NA → null."""
    from pyspark.sql.types import StructType

    values = frame[StructType.fromDDL(schema).fieldNames()].astype(object)
    return spark.createDataFrame(values.where(values.notna(), None).values.tolist(), schema)


def sync_table(
    spark: SparkSession,
    settings: Settings,
    name: str,
    keys: list[str],
    rows: DataFrame,
    ignore: list[str] | None = None,
) -> int:
    """Make ``name`` equal ``rows`` by MERGE on ``keys``; returns the number of rows.

    Columns in ``ignore`` are written but do not by themselves make a row "changed".
    """
    from pyspark.sql import functions as F

    from jobs.golden import _target

    compared = [c for c in rows.columns if c not in set(keys) | set(ignore or [])]
    hashed = rows.withColumn(
        ROW_HASH, F.sha2(F.to_json(F.struct(*[F.col(f"`{c}`") for c in compared])), 256)
    ).localCheckpoint()
    count = hashed.count()
    if not tables.exists(spark, settings, name):
        tables.append(hashed, settings, name)
        return count
    condition = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
    (
        _target(spark, settings, name)
        .alias("t")
        .merge(hashed.alias("s"), condition)
        .whenMatchedUpdateAll(condition=f"t.{ROW_HASH} <> s.{ROW_HASH}")
        .whenNotMatchedInsertAll()
        .whenNotMatchedBySourceDelete()
        .execute()
    )
    return count

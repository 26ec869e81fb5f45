"""Silver: each bronze resource standardised and deduplicated, one row per declared key.

The latest version of a key wins: the later batch, then the later update time (the first of
``update_time``, ``registration_date`` or ``issue_date`` the contract has), then the later
record in the file. The rule is ``DEDUP_RULE``; every superseded or duplicate bronze row is
counted in the build ledger, so bronze rows = silver upserts + superseded, always.

``transform`` is pure; ``merge_batch`` MERGEs one bronze batch into ``silver.<table>`` and
returns the keys whose content changed, which is what the base libraries rebuild.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from datong import tables
from jobs.affected import BROADCAST_KEYS

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from datong.settings import Settings

ORDER_COLUMNS = ("update_time", "registration_date", "issue_date")
DEDUP_RULE = (
    "latest version per primary key: later batch, then later update/registration time, "
    "then later record number / 同一主键取最新版本"
)
CONTENT_HASH = "_content_hash"
SILVER_LINEAGE = ["_source_file", "_batch_id", "_row_number"]


@dataclass
class SilverResult:
    table: str
    bronze_rows: int
    upserted: int
    superseded: int
    #: The rows whose content changed, before and after (contract columns).
    changed: DataFrame


def silver_name(bronze: str) -> str:
    return "silver." + bronze.split(".", 1)[1]


def _order(frame: DataFrame) -> list[Column]:
    from pyspark.sql import functions as F

    order = [F.col("_batch_id").desc()]
    order += [F.col(c).desc_nulls_last() for c in ORDER_COLUMNS if c in frame.columns][:1]
    return [*order, F.col("_row_number").desc()]


def transform(bronze: DataFrame, resource: Any) -> DataFrame:
    """Latest row per primary key, with a hash of its contract columns."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    columns = [e.name for e in resource.elements]
    window = Window.partitionBy(*resource.primary_key).orderBy(*_order(bronze))
    # Key elements are not nullable in bronze: a row without its key was quarantined.
    ranked = bronze.withColumn("_rank", F.row_number().over(window))
    return ranked.where(F.col("_rank") == 1).select(
        *columns,
        *SILVER_LINEAGE,
        F.sha2(F.to_json(F.struct(*columns)), 256).alias(CONTENT_HASH),
    )


def empty(spark: SparkSession, resource: Any) -> DataFrame:
    """An empty silver table of ``resource``: a source that has delivered nothing yet."""
    from pyspark.sql.types import StructType

    from jobs.rules import SPARK_TYPES

    types = {**SPARK_TYPES, "date": "date", "timestamp": "timestamp"}
    fields = ", ".join(f"`{e.name}` {types[e.type]}" for e in resource.elements)
    lineage = "_source_file string, _batch_id string, _row_number bigint"
    schema = StructType.fromDDL(f"{fields}, {lineage}, {CONTENT_HASH} string")
    return spark.createDataFrame([], schema)


def merge_batch(
    spark: SparkSession,
    settings: Settings,
    resource: Any,
    batch: DataFrame,
    bronze_rows: int | None = None,
    previous: DataFrame | None = None,
) -> SilverResult:
    """MERGE one batch of bronze rows into silver; the keys whose content changed.

    ``bronze_rows``, the batch's row count when the caller has counted it already, saves a
    read of the batch. ``previous``: silver as it was before this batch, when an earlier
    attempt at the batch may have MERGEd it already (the changes are then those against
    ``previous``, and the MERGE writes them again); the table as it is otherwise.
    """
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from datong.storage import spark_location

    name = silver_name(resource.name)
    keys = list(resource.primary_key)
    columns = [e.name for e in resource.elements]
    bronze_rows = batch.count() if bronze_rows is None else bronze_rows
    latest = transform(batch, resource).localCheckpoint()
    upserted = latest.count()
    if not tables.exists(spark, settings, name):
        tables.append(latest, settings, name)
        return SilverResult(name, bronze_rows, upserted, bronze_rows - upserted, latest)
    current = tables.read(spark, settings, name) if previous is None else previous
    old = current.select(*keys, F.col(CONTENT_HASH).alias("_old_hash"))
    few = upserted <= BROADCAST_KEYS
    if few:
        # A small batch: its keys are broadcast and silver filtered by them, not shuffled.
        old = old.join(F.broadcast(latest.select(*keys)), keys, "left_semi")
    changed_keys = (
        latest.join(old, keys, "left")
        .where(F.col("_old_hash").isNull() | (F.col("_old_hash") != F.col(CONTENT_HASH)))
        .select(*keys)
        .localCheckpoint()
    )
    wanted = F.broadcast(changed_keys) if few else changed_keys
    # The changed rows as they were and as they are (a corrected ID affects both persons),
    # materialised before the MERGE rewrites the old ones.
    changed = (
        latest.join(changed_keys, keys, "left_semi")
        .select(*columns)
        .unionByName(current.join(wanted, keys, "left_semi").select(*columns))
        .localCheckpoint()
    )
    condition = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
    # Only the changed rows go to the MERGE: it then needs no column of the target's rows
    # but the key, where comparing content hashes in the MERGE read and shuffled them all.
    staged = latest.join(wanted, keys, "left_semi")
    with tables.merge_source(spark, staged, few) as source:
        (
            DeltaTable.forPath(spark, spark_location(settings, name))
            .alias("t")
            .merge(source.alias("s"), condition)
            .whenMatchedUpdateAll()
            .whenNotMatchedInsertAll()
            .execute()
        )
    return SilverResult(name, bronze_rows, upserted, bronze_rows - upserted, changed)

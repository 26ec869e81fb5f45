"""Silver: each bronze resource standardised and deduplicated, one row per declared key.

The latest version of a key wins: the later batch, then the later update time (the first of
``update_time``, ``registration_date`` or ``issue_date`` the contract has), then the later
record in the file (then the later file name, so that the choice never depends on the
plan). The rule is ``DEDUP_RULE``, and it holds across batches too: a batch built late (a
department's redelivery of a file that failed, after a newer batch was built) changes no
key whose silver row is newer, so the incremental build ends where a full build does. Every
superseded or duplicate bronze row is counted in the build ledger, so bronze rows = silver
upserts + superseded, always (the upserts are the batch's latest row per key: a late row
that silver holds a newer version of is among them, though it changes nothing).

A complete batch of a full-snapshot source also retires the keys it no longer holds
(``jobs.snapshot``): their rows are deleted from silver in the same MERGE and count among
the changed rows, so the subjects they named are rebuilt without them.

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
    from jobs.snapshot import Snapshot

ORDER_COLUMNS = ("update_time", "registration_date", "issue_date")
DEDUP_RULE = (
    "latest version per primary key: later batch, then later update/registration time, "
    "then later record number, then later file name / 同一主键取最新版本"
)
CONTENT_HASH = "_content_hash"
#: In a MERGE's source: the row is a key the snapshot retires.
RETIRE = "_retire"
SILVER_LINEAGE = ["_source_file", "_batch_id", "_row_number"]


@dataclass
class SilverResult:
    table: str
    bronze_rows: int
    upserted: int
    superseded: int
    #: The rows whose content changed, before and after (contract columns), and the rows
    #: retired.
    changed: DataFrame
    #: Keys a complete full snapshot no longer holds, deleted from silver; None when the
    #: batch was not applied as a complete snapshot.
    retired: int | None = None


def silver_name(bronze: str) -> str:
    return "silver." + bronze.split(".", 1)[1]


def _version_columns(frame: DataFrame) -> list[Column]:
    """What makes one row of a key later than another, most significant first."""
    from pyspark.sql import functions as F

    updated = [F.col(c) for c in ORDER_COLUMNS if c in frame.columns][:1]
    return [F.col("_batch_id"), *updated, F.col("_row_number"), F.col("_source_file")]


def _order(frame: DataFrame) -> list[Column]:
    """The latest row first (a missing update time counts as the earliest)."""
    return [column.desc_nulls_last() for column in _version_columns(frame)]


def version(frame: DataFrame) -> Column:
    """A row's place in the ``_order``, as one comparable value (a later row is greater)."""
    from pyspark.sql import functions as F

    # A struct compares field by field; a null field would compare as unknown, so a missing
    # update time is written as a flag that sorts it before every present one.
    fields = []
    for number, column in enumerate(_version_columns(frame)):
        fields += [column.isNotNull().alias(f"_p{number}"), column.alias(f"_v{number}")]
    return F.struct(*fields)


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
    snapshot: Snapshot | None = None,
    after_snapshot: bool = False,
) -> SilverResult:
    """MERGE one batch of bronze rows into silver; the keys whose content changed.

    ``bronze_rows``, the batch's row count when the caller has counted it already, saves a
    read of the batch. ``previous``: silver as it was before this batch, when an earlier
    attempt at the batch may have MERGEd it already (the changes are then those against
    ``previous``, and the MERGE writes them again); the table as it is otherwise.
    ``snapshot``: every key of a complete full-snapshot batch; silver's older rows of the
    other keys are retired (``jobs.snapshot``). ``after_snapshot``: a complete snapshot
    newer than this (late) batch was built already; a key it retired or never had does not
    come back with this batch's row (built in batch order, the snapshot would retire it).
    """
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from datong.storage import spark_location

    name = silver_name(resource.name)
    keys = list(resource.primary_key)
    columns = [e.name for e in resource.elements]
    bronze_rows = batch.count() if bronze_rows is None else bronze_rows
    latest = transform(batch, resource)
    exists = tables.exists(spark, settings, name)
    if not exists:
        latest = latest.localCheckpoint()
        upserted = latest.count()
        tables.append(latest, settings, name)
        # A snapshot that starts the table retires nothing, but a late batch comes after it.
        retired = None if snapshot is None else 0
        return SilverResult(name, bronze_rows, upserted, bronze_rows - upserted, latest, retired)
    current = tables.read(spark, settings, name) if previous is None else previous
    if after_snapshot:
        # Superseded by the newer snapshot, counted so: rows of keys silver no longer holds.
        latest = latest.join(current.select(*keys), keys, "left_semi")
    latest = latest.localCheckpoint()
    upserted = latest.count()
    old = current.select(
        *keys, F.col(CONTENT_HASH).alias("_old_hash"), version(current).alias("_old_version")
    )
    few = upserted <= BROADCAST_KEYS
    if few:
        # A small batch: its keys are broadcast and silver filtered by them, not shuffled.
        old = old.join(F.broadcast(latest.select(*keys)), keys, "left_semi")
    # A key changes when it is new, or when its row differs and is not older than silver's
    # (a late batch's older row would undo a newer batch: a full build orders them).
    newer = version(latest) >= F.col("_old_version")
    changed_keys = (
        latest.join(old, keys, "left")
        .where(F.col("_old_hash").isNull() | ((F.col("_old_hash") != F.col(CONTENT_HASH)) & newer))
        .select(*keys)
        .localCheckpoint()
    )
    wanted = F.broadcast(changed_keys) if few else changed_keys
    # The changed rows as they were and as they are (a corrected ID affects both persons),
    # materialised before the MERGE rewrites the old ones.
    changed = latest.join(changed_keys, keys, "left_semi").select(*columns)
    changed = changed.unionByName(current.join(wanted, keys, "left_semi").select(*columns))
    retired_count: int | None = None
    gone = None
    if snapshot is not None:
        from jobs.snapshot import retired

        gone = retired(current, snapshot, keys).localCheckpoint()
        retired_count = gone.count()
        changed = changed.unionByName(gone.select(*columns))
    changed = changed.localCheckpoint()
    condition = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
    # Only the changed rows go to the MERGE: it then needs no column of the target's rows
    # but the key, where comparing content hashes in the MERGE read and shuffled them all.
    staged = latest.join(wanted, keys, "left_semi").withColumn(RETIRE, F.lit(False))
    if retired_count:
        staged = staged.unionByName(
            gone.select(*keys).withColumn(RETIRE, F.lit(True)), allowMissingColumns=True
        )
    values = {c: f"s.`{c}`" for c in latest.columns}
    few = few and (retired_count or 0) <= BROADCAST_KEYS
    with tables.merge_source(spark, staged, few) as source:
        (
            DeltaTable.forPath(spark, spark_location(settings, name))
            .alias("t")
            .merge(source.alias("s"), condition)
            .whenMatchedDelete(condition=f"s.{RETIRE}")
            .whenMatchedUpdate(set=values)
            .whenNotMatchedInsert(condition=f"NOT s.{RETIRE}", values=values)
            .execute()
        )
    return SilverResult(name, bronze_rows, upserted, bronze_rows - upserted, changed, retired_count)

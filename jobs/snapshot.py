"""Full snapshots: a key that a complete delivery of a ``full`` source no longer holds retires.

A resource delivered in ``full`` mode (the household register, student enrollment,
the credit red and black lists, the 编办 and 民政 registers, divisions, addresses) delivers
its whole current set in every batch. A key that silver holds from an earlier batch and
that the newest batch lacks has left the set: a student who died is no longer enrolled, an
entry taken off the black list is no longer listed. ``silver.merge_batch`` deletes such a
row (and the subjects it named are rebuilt), but only when the absence is certain:

- **the batch is complete**: each file the ingest ledger lists for the source's batch
  succeeded at its latest attempt. A file that failed whole, or a changed file that was
  refused, may have held the key.
- **every quarantined row still names its key**: ingest's rules are applied again to the
  values the row delivered, and its key counts as delivered (a row quarantined for a bad
  date is still the department saying the key is in the set). A quarantined row whose key
  itself broke a rule, or that does not split into the declared columns, could be any
  key: then the batch retires nothing, and the next complete batch does.
- **the row is from an older batch**: a late batch (a redelivery of a file that failed)
  retires nothing a newer batch delivered, so the incremental build ends where a full
  build in batch order does.

``retired`` is the pure transform; ``delivered_keys`` does the I/O (ingest ledger, bronze,
quarantine) and says why a batch retires nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from datong import tables

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from datong.settings import Settings

log = logging.getLogger(__name__)

#: The field a whole-row problem names (INGEST-001, the field count).
WHOLE_ROW = "*"


@dataclass
class Snapshot:
    """The keys one complete batch of a full source delivered (its bronze rows and its
    quarantined rows alike)."""

    batch_id: str
    keys: DataFrame


def full_resources() -> set[str]:
    """The bronze tables whose deliveries are full snapshots (``delivery.mode``)."""
    from datong.contracts import load_resources

    return {name for name, r in load_resources().items() if r.delivery.mode == "full"}


def complete(attempts: list[Any]) -> bool:
    """Whether each file of a batch succeeded at its latest attempt.

    ``attempts``: the batch's ingest ledger rows (``file``, ``status``, ``finished_at``). A
    ``skipped`` row (a file unchanged since it was ingested) says nothing new and is passed
    over. A batch with no attempt is not complete.
    """
    latest: dict[str, Any] = {}
    for row in sorted(attempts, key=lambda r: r["finished_at"] or dt.datetime.min):
        if row["status"] != "skipped":
            latest[row["file"]] = row["status"]
    return bool(latest) and all(status == "succeeded" for status in latest.values())


def keyed_rows(quarantined: list[Any], resource: Any) -> list[dict[str, str | None]] | None:
    """The delivered values of quarantined rows, or None if any row's key is unknown.

    A row's key is unknown when a rule failed on a key field or on the whole row, or when
    its raw text no longer splits into the declared columns.
    """
    from jobs.staging import delivered_values

    keys = set(resource.primary_key) | {WHOLE_ROW}
    columns = [e.name for e in resource.elements]
    rows = []
    for item in quarantined:
        if any(problem["field"] in keys for problem in item["problems"]):
            return None
        values = delivered_values(item["_raw"], resource.delivery.format, columns)
        if values is None:
            return None
        rows.append(values)
    return rows


def retired(current: DataFrame, snapshot: Snapshot, keys: list[str]) -> DataFrame:
    """Rows of silver (``current``) from batches before the snapshot's that it lacks."""
    from pyspark.sql import functions as F

    older = current.where(F.col("_batch_id") < F.lit(snapshot.batch_id))
    return older.join(snapshot.keys, keys, "left_anti")


def delivered_keys(
    spark: SparkSession, settings: Settings, resource: Any, batch_id: str
) -> Snapshot | None:
    """Every key batch ``batch_id`` of ``resource`` delivered; None when it cannot retire.

    Read from bronze (every file of the batch, rows the quality suite rejected included: they
    were delivered) and from the quarantine, the rules applied again to its rows' values.
    """
    from pyspark.sql import functions as F

    from jobs import rules
    from jobs.ingest import LEDGER, QUARANTINE
    from jobs.staging import FIELD_COUNT

    name = resource.name
    if not tables.exists(spark, settings, LEDGER):
        log.info("%s batch %s: no ingest ledger, so no key retires", name, batch_id)
        return None
    attempts = (
        tables.read(spark, settings, LEDGER)
        .where((F.col("resource") == name) & (F.col("batch_id") == batch_id))
        .select("file", "status", "finished_at")
        .collect()
    )
    if not complete(attempts):
        log.warning("%s batch %s: a file failed, so no key retires", name, batch_id)
        return None
    keys = list(resource.primary_key)
    present = tables.read(spark, settings, name).where(F.col("_batch_id") == batch_id)
    present = present.select(*keys)
    if tables.exists(spark, settings, QUARANTINE):
        quarantined = (
            tables.read(spark, settings, QUARANTINE)
            .where((F.col("_resource") == name) & (F.col("_batch_id") == batch_id))
            .select("_raw", "problems")
            .collect()
        )
        values = keyed_rows(quarantined, resource)
        if values is None:
            log.warning(
                "%s batch %s: a quarantined row's key is unreadable, so no key retires",
                name, batch_id,
            )  # fmt: skip
            return None
        if values:
            columns = [e.name for e in resource.elements]
            staged = spark.createDataFrame(
                [[v[c] for c in columns] for v in values],
                ", ".join(f"`{c}` string" for c in columns),
            ).withColumn(FIELD_COUNT, F.lit(len(columns)))
            present = present.unionByName(rules.transform(staged, resource).select(*keys))
    return Snapshot(batch_id, present.distinct())

"""Lake table handles: read and write Delta tables by their dataset name ``<schema>.<table>``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from datong.settings import Settings
from datong.storage import spark_location

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

T = TypeVar("T")


def exists(spark: SparkSession, settings: Settings, name: str) -> bool:
    from delta.tables import DeltaTable

    return bool(DeltaTable.isDeltaTable(spark, spark_location(settings, name)))


def read(
    spark: SparkSession, settings: Settings, name: str, version: int | None = None
) -> DataFrame:
    """The table, or with ``version`` the table as that commit left it (time travel)."""
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(spark_location(settings, name))


def append(
    frame: DataFrame,
    settings: Settings,
    name: str,
    transaction: str | None = None,
    merge_schema: bool = False,
) -> None:
    """Append ``frame``; with ``transaction`` the write happens at most once per table.

    Delta records (transaction, version 1) in the commit and skips a later write with the
    same pair, so a rerun after a crash between two tables' writes cannot duplicate rows.
    """
    # Schemas change only on purpose: a new nullable column where the caller allows it.
    writer = (
        frame.write.format("delta").mode("append").option("mergeSchema", str(merge_schema).lower())
    )
    if transaction:
        writer = writer.option("txnAppId", transaction).option("txnVersion", 1)
    writer.save(spark_location(settings, name))


#: Delta's own copy of a MERGE source, off while ``merge_source`` has made one.
MATERIALIZE_SOURCE = "spark.databricks.delta.merge.materializeSource"

# MERGEs run in threads at once (``together``) share the session's conf: the first to start
# turns Delta's copy off, the last to finish restores it.
_sources_lock = threading.Lock()
_sources_open = 0
_sources_previous: str | None = None


@contextmanager
def merge_source(spark: SparkSession, source: DataFrame, few: bool) -> Iterator[DataFrame]:
    """The source of one MERGE, computed once, and broadcast when ``few``.

    Delta joins the source with the target up to three times (finding the touched files,
    marking deletion vectors, writing). Broadcast, the source reaches every scan of the
    target and the target is not shuffled for the first two: at 10M persons each shuffle
    of the target moves its key column (100–200 MB) for a 1 % change. Delta would copy a
    source that is not a plain Delta scan once more before using it (``materializeSource``,
    which keeps the hint); it is checkpointed here already, so Delta's second copy is
    turned off while the MERGE runs.
    """
    global _sources_open, _sources_previous
    from pyspark.sql import functions as F

    computed = source.localCheckpoint()
    with _sources_lock:
        if _sources_open == 0:
            _sources_previous = spark.conf.get(MATERIALIZE_SOURCE, None)
            spark.conf.set(MATERIALIZE_SOURCE, "none")
        _sources_open += 1
    try:
        yield F.broadcast(computed) if few else computed
    finally:
        with _sources_lock:
            _sources_open -= 1
            if _sources_open == 0:
                if _sources_previous is None:
                    spark.conf.unset(MATERIALIZE_SOURCE)
                else:
                    spark.conf.set(MATERIALIZE_SOURCE, _sources_previous)


def together(spark: SparkSession, *writes: Callable[[], T]) -> list[T]:
    """Run ``writes``, each to its own tables, at once; their results in order.

    A small MERGE spends much of its time in the driver (reading the log, planning, compiling
    code, committing); run side by side, one's driver work overlaps another's tasks: a 1 %
    change at 1M persons, 86 → 74 s once the JVM is warm (BENCHMARKS.md). Every write still
    commits alone, as it would one after the other; all finish before the first error, if
    any, is raised. Each thread starts with the caller's Spark job properties and tags.
    """
    from pyspark.util import inheritable_thread_target

    if len(writes) <= 1:
        return [write() for write in writes]
    inherit = inheritable_thread_target(spark)
    with ThreadPoolExecutor(max_workers=len(writes), thread_name_prefix="write") as pool:
        futures = [pool.submit(inherit(write)) for write in writes]
        wait(futures)
    return [future.result() for future in futures]


def state(spark: SparkSession, settings: Settings, name: str) -> str | None:
    """``<table id>@<version>``: equal only if nothing was committed to the table between two
    calls (a table dropped and made again has a new id). None if there is no table."""
    from delta.tables import DeltaTable

    if not exists(spark, settings, name):
        return None
    table = DeltaTable.forPath(spark, spark_location(settings, name))
    identity = table.detail().select("id").first()
    version = table.history(1).select("version").first()
    assert identity is not None and version is not None
    return f"{identity['id']}@{version['version']}"

"""Ingest: department deliveries land in ``lake.bronze``, bad rows in ``lake.quarantine``,
one ledger row per file in ``lake.ops.ingest_ledger``; nothing is lost.

For each new file of a source (a file whose checksum has no successful ledger row): stage
it (strict decode, exact record numbers), apply the bronze rules, append accepted rows to
``bronze.<table>`` with lineage columns and rejected rows to ``quarantine.rejected_row``
with every rule broken, then write the ledger row. Rows read = accepted + quarantined, or
the job fails. The two data writes are Delta idempotent writes keyed by the file's
checksum, so a crash between them is completed, not duplicated, by the rerun.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datong import tables
from datong.contracts import load_resources
from datong.settings import Settings, load_settings
from datong.sources import Source, load_sources
from jobs import rules
from jobs.staging import RAW, ROW_NUMBER, UnreadableFile, file_checksum, stage

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

LEDGER = "ops.ingest_ledger"
QUARANTINE = "quarantine.rejected_row"
EXTENSIONS = {"csv": ".csv", "jsonl": ".jsonl", "xlsx": ".xlsx", "db_table": ".csv"}


class ReconciliationError(RuntimeError):
    """Rows read did not equal accepted plus quarantined: the job refuses to go on."""


@dataclass
class FileResult:
    """One ledger row: what happened to one delivered file."""

    source_id: str
    resource: str
    batch_id: str
    file: str
    checksum: str
    status: str  # succeeded, failed, skipped
    rows_read: int = 0
    accepted: int = 0
    quarantined: int = 0
    error: str | None = None
    run_id: str = ""
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    # JDBC pulls: the source's high-water mark after this pull (watermark column's value).
    watermark_mark: str | None = None


#: Names of files still being written or left by tools: not deliveries, looked at again later.
IN_PROGRESS = (".part", ".tmp", ".filepart", ".crdownload")


def _delivered_files(source: Source, resource: Any, landing: Path) -> list[tuple[str, Path]]:
    """Every file in the source's batch folders (hidden and in-progress files aside)."""
    folder = landing / source.delivery.path  # type: ignore[union-attr]
    found = []
    for batch in sorted(p for p in folder.glob("batch-*") if p.is_dir()):
        for path in sorted(batch.iterdir()):
            hidden = path.name.startswith(".") or path.name.lower().endswith(IN_PROGRESS)
            if path.is_file() and not hidden:
                found.append((batch.name, path))
    return found


def _not_a_delivery(resource: Any, path: Path, relative: str) -> str | None:
    """Why ``path`` cannot be this resource's delivery (its format by name), or None."""
    suffix = EXTENSIONS[resource.delivery.format]
    if path.suffix.lower() == suffix:
        return None
    return (
        f"{relative}: not a {suffix} file, the format {resource.name} is declared in / "
        f"文件格式与资源目录声明的 {suffix} 不符"
    )


def succeeded_files(spark: SparkSession, settings: Settings, source_id: str) -> dict[str, str]:
    """Each file of the source ingested successfully: its path and the checksum it had."""
    from pyspark.sql import functions as F

    if not tables.exists(spark, settings, LEDGER):
        return {}
    ledger = tables.read(spark, settings, LEDGER)
    rows = ledger.where((F.col("source_id") == source_id) & (F.col("status") == "succeeded"))
    return {row["file"]: row["checksum"] for row in rows.select("file", "checksum").collect()}


def succeeded_checksums(spark: SparkSession, settings: Settings, source_id: str) -> set[str]:
    return set(succeeded_files(spark, settings, source_id).values())


def with_reasons(checked: DataFrame) -> DataFrame:
    """Rejected rows as the quarantine table holds them: raw text and every rule broken."""
    from pyspark.sql import functions as F

    texts = rules.rule_texts()
    zh = F.create_map(*[x for rule, t in texts.items() for x in (F.lit(rule), F.lit(t["zh"]))])
    en = F.create_map(*[x for rule, t in texts.items() for x in (F.lit(rule), F.lit(t["en"]))])
    problems = F.transform(
        F.col(rules.RULES),
        lambda item: F.struct(
            F.split(item, ":")[0].alias("rule_id"),
            F.split(item, ":")[1].alias("field"),
            F.element_at(zh, F.split(item, ":")[0]).alias("reason_zh"),
            F.element_at(en, F.split(item, ":")[0]).alias("reason_en"),
        ),
    )
    return checked.select(
        "_source_id",
        "_resource",
        "_source_file",
        "_batch_id",
        F.col(ROW_NUMBER).alias("_row_number"),
        F.col(RAW).alias("_raw"),
        problems.alias("problems"),
        "_ingested_at",
    )


def _fault(point: str) -> None:
    """Test hook: DATONG_INGEST_FAULT=<point> crashes the job there (never set in production)."""
    if os.environ.get("DATONG_INGEST_FAULT") == point:
        raise RuntimeError(f"injected fault at {point}")


def ingest_file(
    spark: SparkSession,
    settings: Settings,
    source: Source,
    resource: Any,
    batch_id: str,
    path: Path,
    landing: Path,
) -> FileResult:

    started = dt.datetime.now()
    relative = path.relative_to(landing).as_posix()
    checksum = file_checksum(path)
    result = FileResult(
        source.id, resource.name, batch_id, relative, checksum, "failed",
        run_id=uuid.uuid4().hex, started_at=started,
    )  # fmt: skip
    columns = [e.name for e in resource.elements]
    fmt = "csv" if resource.delivery.format == "db_table" else resource.delivery.format
    target = settings.state_dir / "staging" / source.id / f"{checksum}.parquet"
    try:
        types = {e.name: e.type for e in resource.elements}
        staged = stage(path, fmt, resource.delivery.encoding, columns, target, types)
    except UnreadableFile as error:
        result.error = f"{relative}: {error}"
        result.finished_at = dt.datetime.now()
        return result
    result.rows_read = staged.records
    frame = spark.read.parquet(str(staged.path))
    return land(spark, settings, source, resource, frame, result)


def land(
    spark: SparkSession,
    settings: Settings,
    source: Source,
    resource: Any,
    frame: DataFrame,
    result: FileResult,
) -> FileResult:
    """Apply the bronze rules to a staged frame and write bronze and quarantine once."""
    from pyspark.sql import functions as F

    columns = [e.name for e in resource.elements]
    started = result.started_at or dt.datetime.now()
    relative, batch_id, checksum = result.file, result.batch_id, result.checksum
    checked = rules.transform(frame, resource).select(
        "*",
        F.lit(source.id).alias("_source_id"),
        F.lit(resource.name).alias("_resource"),
        F.lit(relative).alias("_source_file"),
        F.lit(batch_id).alias("_batch_id"),
        F.lit(started).cast("timestamp").alias("_ingested_at"),
    )
    checked = checked.persist()
    try:
        accepted = checked.where(F.size(rules.RULES) == 0).select(
            *columns,
            "_source_id",
            "_source_file",
            "_batch_id",
            F.col(ROW_NUMBER).alias("_row_number"),
            "_ingested_at",
            F.sha2(F.col(RAW), 256).alias("_row_hash"),
        )
        rejected = with_reasons(checked.where(F.size(rules.RULES) > 0))
        # One job evaluates the rules, fills the cache and counts both outcomes.
        outcomes = checked.groupBy((F.size(rules.RULES) == 0).alias("ok")).count().collect()
        counts = {row["ok"]: row["count"] for row in outcomes}
        result.accepted, result.quarantined = counts.get(True, 0), counts.get(False, 0)
        if result.rows_read != result.accepted + result.quarantined:
            raise ReconciliationError(
                f"{relative}: read {result.rows_read} rows but accepted {result.accepted} "
                f"and quarantined {result.quarantined}"
            )
        transaction = f"ingest:{source.id}:{checksum}"
        tables.append(accepted, settings, resource.name, transaction)
        _fault("after_bronze")
        tables.append(rejected, settings, QUARANTINE, transaction)
    finally:
        checked.unpersist()
    result.status = "succeeded"
    result.finished_at = dt.datetime.now()
    return result


def write_ledger(spark: SparkSession, settings: Settings, results: list[FileResult]) -> None:
    if not results:
        return
    from pyspark.sql.types import (
        LongType,
        StringType,
        StructField,
        StructType,
        TimestampType,
    )

    schema = StructType(
        [StructField(n, StringType()) for n in
         ("source_id", "resource", "batch_id", "file", "checksum", "status")]
        + [StructField(n, LongType()) for n in ("rows_read", "accepted", "quarantined")]
        + [StructField("error", StringType()), StructField("run_id", StringType()),
           StructField("started_at", TimestampType()), StructField("finished_at", TimestampType()),
           StructField("watermark_mark", StringType())]
    )  # fmt: skip
    rows = [tuple(asdict(r).values()) for r in results]
    # The ledger gained columns over time (watermark_mark): older ledgers evolve in place.
    tables.append(spark.createDataFrame(rows, schema), settings, LEDGER, merge_schema=True)


def register_in_trino(settings: Settings, names: list[str]) -> bool:
    """Make the written tables queryable as ``lake.<name>`` when Trino is running."""
    from datong.query import QueryError, register_table
    from datong.services.trino import trino_healthy

    if not trino_healthy(settings):
        log.warning("Trino is not running at %s: tables not registered", settings.trino_url)
        return False
    for name in names:
        try:
            register_table(settings, name)
        except QueryError as error:
            log.warning("could not register lake.%s in Trino: %s", name, error)
            return False
    return True


def run_source(
    source_id: str,
    landing: str | Path | None = None,
    settings: Settings | None = None,
    spark: SparkSession | None = None,
    register: bool = True,
    validate: bool = True,
) -> list[FileResult]:
    """Ingest every new delivered file of one source; returns one result per file.

    With ``validate`` the quality suite then checks each batch that landed (jobs.quality):
    rows breaking a ``fail`` rule are quarantined before any build can read them.
    """
    settings = settings or load_settings()
    if spark is None:
        from datong.spark import spark_session

        spark = spark_session(settings, f"ingest-{source_id}")
    source = load_sources()[source_id]
    resource = load_resources()[source.resource]
    if source.delivery.kind == "jdbc":
        results = [pull_jdbc(spark, settings, source, resource)]
        write_ledger(spark, settings, results)
        finish_pull(settings, source.id)
        if register and results[0].status == "succeeded":
            register_in_trino(settings, [LEDGER, resource.name, QUARANTINE])
        if validate:
            _validate_batches(spark, settings, resource.name, results, register)
        return results
    landing_root = Path(landing) if landing else settings.state_dir / "landing"
    landed = succeeded_files(spark, settings, source_id)
    done = set(landed.values())
    results: list[FileResult] = []
    for batch_id, path in _delivered_files(source, resource, landing_root):
        checksum = file_checksum(path)
        relative = path.relative_to(landing_root).as_posix()
        if checksum in done:
            results.append(
                FileResult(source.id, resource.name, batch_id, relative, checksum, "skipped")
            )
            continue
        refusal = _not_a_delivery(resource, path, relative)
        if refusal is None and relative in landed:
            # A delivery is never rewritten: its rows are in bronze and built, and a second
            # content under the same name would sit beside them with the same lineage.
            refusal = (
                f"{relative}: the file changed after it was ingested (checksum "
                f"{landed[relative][:12]}… then, {checksum[:12]}… now); a correction is "
                "delivered in a new batch folder / 文件入库后被改动，更正数据请放入新的批次目录"
            )
        if refusal is not None:
            now = dt.datetime.now()
            result = FileResult(
                source.id, resource.name, batch_id, relative, checksum, "failed",
                error=refusal, run_id=uuid.uuid4().hex, started_at=now, finished_at=now,
            )  # fmt: skip
            write_ledger(spark, settings, [result])
            results.append(result)
            continue
        result = ingest_file(spark, settings, source, resource, batch_id, path, landing_root)
        write_ledger(spark, settings, [result])
        results.append(result)
        if result.status == "succeeded":
            # A second file with the same content in this run is skipped like a rerun: its
            # bronze write, keyed by the checksum, would land nothing.
            done.add(checksum)
    if register and any(r.status != "skipped" for r in results):
        written = [LEDGER]
        if tables.exists(spark, settings, resource.name):
            written.append(resource.name)
        if tables.exists(spark, settings, QUARANTINE):
            written.append(QUARANTINE)
        register_in_trino(settings, written)
    if validate:
        _validate_batches(spark, settings, resource.name, results, register)
    return results


def _validate_batches(
    spark: SparkSession, settings: Settings, name: str, results: list[FileResult], register: bool
) -> None:
    from jobs import quality

    batches = sorted({r.batch_id for r in results if r.status == "succeeded" and r.accepted})
    if batches:
        quality.run([name], settings, spark, batches={name: batches}, register=register)


def last_mark(spark: SparkSession, settings: Settings, source_id: str) -> str | None:
    """The high-water mark of the source's last successful pull, from the ledger."""
    from pyspark.sql import functions as F

    if not tables.exists(spark, settings, LEDGER):
        return None
    ledger = tables.read(spark, settings, LEDGER)
    if "watermark_mark" not in ledger.columns:
        return None
    rows = (
        ledger.where((F.col("source_id") == source_id) & (F.col("status") == "succeeded"))
        .orderBy(F.col("finished_at").desc())
        .select("watermark_mark")
        .limit(1)
        .collect()
    )
    return rows[0]["watermark_mark"] if rows else None


def _pull_intent(settings: Settings, source_id: str) -> Path:
    """Where a JDBC pull records what it staged, until its ledger row is written."""
    return settings.state_dir / "staging" / source_id / "pull.json"


def _unfinished_pull(spark: SparkSession, settings: Settings, source: Source) -> FileResult | None:
    """The pull a crash interrupted after staging, to be landed again exactly as staged.

    Its rows may be in bronze already (the crash came after that write): landing the same
    staged rows under the same checksum completes it instead of pulling its range twice.
    None when no pull is pending, or when its ledger row was written after all.
    """
    import json

    from pyspark.sql import functions as F

    path = _pull_intent(settings, source.id)
    if not path.exists():
        return None
    intent = json.loads(path.read_text(encoding="utf-8"))
    if tables.exists(spark, settings, LEDGER):
        recorded = tables.read(spark, settings, LEDGER).where(
            (F.col("source_id") == source.id) & (F.col("file") == intent["file"])
        )
        if not recorded.isEmpty():
            path.unlink()
            return None
    log.warning("%s: completing the interrupted pull %s", source.id, intent["batch_id"])
    return FileResult(
        source.id, intent["resource"], intent["batch_id"], intent["file"], intent["checksum"],
        "failed", run_id=intent["run_id"],
        started_at=dt.datetime.fromisoformat(intent["started_at"]),
        watermark_mark=intent["watermark_mark"],
    )  # fmt: skip


def pull_batch_id(started: dt.datetime) -> str:
    """A pull's batch id: when it started, to the microsecond, at a fixed width.

    Two pulls in one second differ, and the ids sort as the pulls started: a build takes a
    source's batches in the order of their ids.
    """
    return f"pull-{started:%Y%m%d%H%M%S%f}"


def pull_jdbc(spark: SparkSession, settings: Settings, source: Source, resource: Any) -> FileResult:
    """Pull a department table's new rows over JDBC and land them like a delivered file.

    The pull is staged, and what was staged is recorded next to it before anything lands;
    ``finish_pull`` removes the record once the ledger row is written. A rerun after a crash
    in between lands the same staged rows again, keyed as before, so the bronze write is
    skipped if it was done, and no row of the range is pulled twice.
    """
    import json

    from jobs.jdbc import JdbcSourceError, read_increment

    pending = _unfinished_pull(spark, settings, source)
    if pending is not None:
        staged_path = _staged_pull(settings, source.id, pending.run_id)
        if (staged_path / "_SUCCESS").exists():
            staged = spark.read.parquet(str(staged_path))
            pending.rows_read = staged.count()
            return land(spark, settings, source, resource, staged, pending)
        # The staged rows were removed by hand: pull again from the last recorded mark.
        log.error("%s: %s is gone; pulling anew", source.id, staged_path)
        finish_pull(settings, source.id)
    started = dt.datetime.now()
    since = last_mark(spark, settings, source.id) if source.mode != "full" else None
    table = source.delivery.table  # type: ignore[union-attr]
    batch_id = pull_batch_id(started)
    # Each pull is its own "file": a build records the files it consumed, so a name shared
    # by every pull would leave the second pull's rows unbuilt for good.
    result = FileResult(
        source.id, resource.name, batch_id, f"jdbc:{table}:{batch_id}", "",
        "failed", run_id=uuid.uuid4().hex, started_at=started,
    )  # fmt: skip
    target = _staged_pull(settings, source.id, result.run_id)
    try:
        frame, mark = read_increment(spark, source, resource, since)
        # Evaluate the pull exactly once: stage it, so counts and writes see the same rows.
        frame.write.mode("overwrite").parquet(str(target))
    except (JdbcSourceError, OSError) as error:
        result.error = f"{result.file}: {error}"
        result.finished_at = dt.datetime.now()
        return result
    staged = spark.read.parquet(str(target))
    result.rows_read = staged.count()
    # The checksum keys the bronze write's idempotency: an increment by its watermark range,
    # a full snapshot by its pull (every full pull has the same empty range).
    full = source.mode == "full"
    result.checksum = f"full:{result.run_id}" if full else f"{since or ''}..{mark or ''}"
    result.watermark_mark = mark
    intent = {
        "resource": resource.name, "batch_id": batch_id, "file": result.file,
        "checksum": result.checksum, "run_id": result.run_id,
        "started_at": started.isoformat(), "watermark_mark": mark,
    }  # fmt: skip
    # Written whole or not at all: a crash while writing leaves no half a record.
    path = _pull_intent(settings, source.id)
    path.with_suffix(".tmp").write_text(json.dumps(intent), encoding="utf-8")
    os.replace(path.with_suffix(".tmp"), path)
    return land(spark, settings, source, resource, staged, result)


def _staged_pull(settings: Settings, source_id: str, run_id: str) -> Path:
    return settings.state_dir / "staging" / source_id / f"{run_id}.parquet"


def finish_pull(settings: Settings, source_id: str) -> None:
    """The pull's ledger row is written: nothing is left to complete."""
    _pull_intent(settings, source_id).unlink(missing_ok=True)

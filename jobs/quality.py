"""Quality: each bronze batch and each gold table validated by its Great Expectations suite.

Bronze (after each ingested batch): every check of the resource runs on the batch's rows.
Rows failing a row-level ``fail`` check go to ``quarantine.quality_rejected`` (lineage,
the rule ids and their sentences, the row as JSON) and the build leaves them out of silver;
``ops.quality_ledger`` reconciles, per file, bronze rows = passed + quarantined. Gold (after
a build): every check of the table runs, failing rows are listed in the same quarantine and
a failed ``fail`` check closes the table's gate in ``quality.gate``. Every result goes to
``quality.result`` and every bronze resource's score to ``quality.score``; the Data Docs
are rendered under ``<state>/quality/docs``.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from datong import tables
from datong.contracts import load_resources
from datong.settings import Settings, load_settings
from quality.checks import BRONZE_KEY, GOLD_KEYS, checks_for
from quality.facts import with_facts
from quality.gate import GATE_TABLE, Gate, gate_of
from quality.score import Counts, Score, score

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from quality.validate import CheckResult, Validator

log = logging.getLogger(__name__)

RESULT = "quality.result"
SCORE = "quality.score"
GATE = GATE_TABLE
REJECTED = "quarantine.quality_rejected"
LEDGER = "ops.quality_ledger"
WRITTEN = [RESULT, SCORE, GATE, REJECTED, LEDGER]
MISSING_RULES = ("INGEST-001", "INGEST-002")
PROBLEM = "struct<rule_id:string,field:string,reason_zh:string,reason_en:string>"


class QualityReconciliationError(RuntimeError):
    """A file's bronze rows did not equal passed plus quality-quarantined rows."""


@dataclass
class QualityRun:
    """What one run checked: results, scores and gates by table."""

    run_id: str
    results: dict[str, list[CheckResult]] = field(default_factory=dict)
    scores: dict[str, Score] = field(default_factory=dict)
    gates: dict[str, Gate] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)
    docs: str | None = None


@cache
def validator(docs_dir: str) -> Validator:
    """One GX context per process and docs site (creating one imports GX: seconds)."""
    from pathlib import Path

    from quality.validate import Validator

    return Validator(Path(docs_dir))


def docs_dir(settings: Settings) -> str:
    return str(settings.state_dir / "quality" / "docs")


def _problems(results: list[CheckResult]) -> list[tuple[Any, ...]]:
    from quality.rules import load_rules

    rules = load_rules()
    return [
        (*[key[k] for k in key], r.check.rule, r.check.column,
         rules[r.check.rule].zh, rules[r.check.rule].en)
        for r in results for key in r.failing
    ]  # fmt: skip


def quarantine_rows(
    spark: SparkSession, frame: DataFrame, results: list[CheckResult], key: list[str],
    columns: list[str], lineage: dict[str, Any],
) -> DataFrame:  # fmt: skip
    """The failing rows in the quarantine's layout: every rule broken, the row as JSON."""
    from pyspark.sql import functions as F

    types = dict(frame.dtypes)
    schema = ", ".join(f"`{k}` {types[k]}" for k in key)
    failing = spark.createDataFrame(
        _problems(results), f"{schema}, rule_id string, field string, reason_zh string, "
        "reason_en string",
    )  # fmt: skip
    problems = failing.groupBy(*key).agg(
        F.sort_array(F.collect_set(F.struct("rule_id", "field", "reason_zh", "reason_en")))
        .cast(f"array<{PROBLEM}>")
        .alias("problems")
    )
    rows = frame.join(problems, key, "inner")
    values = {name: F.col(name) if name in rows.columns else F.lit(value)
              for name, value in lineage.items()}  # fmt: skip
    return rows.select(
        values["_source_id"].cast("string").alias("_source_id"),
        values["_resource"].cast("string").alias("_resource"),
        values["_source_file"].cast("string").alias("_source_file"),
        values["_batch_id"].cast("string").alias("_batch_id"),
        values["_row_number"].cast("bigint").alias("_row_number"),
        F.to_json(F.struct(*columns)).alias("_raw"),
        "problems",
        values["_ingested_at"].cast("timestamp").alias("_ingested_at"),
        F.lit(lineage["_run_id"]).alias("_run_id"),
    )


def _result_rows(run_id: str, name: str, results: list[CheckResult], at: dt.datetime) -> list:
    return [
        (run_id, name, r.check.rule, r.check.expectation_type, r.check.column, r.check.severity,
         r.success, r.unexpected_count, r.unexpected_percent, r.element_count, at)
        for r in results
    ]  # fmt: skip


RESULT_SCHEMA = (
    "run_id string, resource string, expectation string, expectation_type string, "
    "column string, severity string, success boolean, unexpected_count bigint, "
    "unexpected_percent double, element_count bigint, checked_at timestamp"
)
SCORE_SCHEMA = (
    "run_id string, resource string, scored_at timestamp, completeness double, "
    "validity double, consistency double, timeliness double, score double"
)
GATE_SCHEMA = "run_id string, resource string, checked_at timestamp, passed boolean, reasons string"
LEDGER_SCHEMA = (
    "run_id string, resource string, batch_id string, source_file string, bronze_rows bigint, "
    "passed bigint, quarantined bigint, checked_at timestamp"
)


def _reconcile(frame: DataFrame, rejected: DataFrame | None) -> list[tuple[str, int, int, int]]:
    """Per file: bronze rows, rows passed (not quarantined), rows quarantined; they must add up.

    ``rejected`` is None when no row failed a ``fail`` rule: every row passed.
    """
    from pyspark.sql import functions as F

    total = {r[0]: r[1] for r in frame.groupBy("_source_file").count().collect()}
    passed, out = dict(total), {}
    if rejected is not None:
        kept = frame.join(rejected.select(*BRONZE_KEY), BRONZE_KEY, "left_anti")
        passed = {r[0]: r[1] for r in kept.groupBy("_source_file").count().collect()}
        out = {r[0]: r[1] for r in rejected.groupBy("_source_file").agg(F.count("*")).collect()}
    rows = []
    for file, count in sorted(total.items()):
        good, bad = passed.get(file, 0), out.get(file, 0)
        if count != good + bad:
            raise QualityReconciliationError(
                f"{file}: {count} bronze rows but {good} passed and {bad} quarantined"
            )
        rows.append((file, count, good, bad))
    return rows


#: What ingest recorded for a (resource, batch): rows read, rows quarantined as missing a
#: required value, rows quarantined as invalid.
IngestTally = dict[tuple[str, str], tuple[int | None, int, int]]


def ingest_tally(spark: SparkSession, settings: Settings, names: list[str]) -> IngestTally:
    """Ingest's counts for every batch of ``names``: one read of its ledger and quarantine."""
    from pyspark.sql import functions as F

    from jobs.ingest import LEDGER as INGEST_LEDGER
    from jobs.ingest import QUARANTINE

    tally: dict[tuple[str, str], list[Any]] = {}
    if tables.exists(spark, settings, INGEST_LEDGER):
        ledger = tables.read(spark, settings, INGEST_LEDGER).where(
            F.col("resource").isin(*names) & (F.col("status") == "succeeded")
        )
        for row in ledger.groupBy("resource", "batch_id").agg(F.sum("rows_read")).collect():
            tally[(row[0], row[1])] = [row[2], 0, 0]
    if tables.exists(spark, settings, QUARANTINE):
        rejected = tables.read(spark, settings, QUARANTINE).where(F.col("_resource").isin(*names))
        lacks = F.exists("problems", lambda p: p["rule_id"].isin(*MISSING_RULES))
        counted = rejected.groupBy("_resource", "_batch_id", lacks.alias("missing")).count()
        for row in counted.collect():
            entry = tally.setdefault((row[0], row[1]), [None, 0, 0])
            entry[1 if row["missing"] else 2] += row["count"]
    return {key: (value[0], value[1], value[2]) for key, value in tally.items()}


def _unexpected(results: list[CheckResult], family: str) -> int:
    return sum(r.unexpected_count for r in results if r.check.family == family)


def bronze_score(
    spark: SparkSession, settings: Settings, name: str, batch: str, checked: int,
    results: list[CheckResult], now: dt.datetime, tally: IngestTally,
) -> Score:  # fmt: skip
    from pyspark.sql import functions as F

    resource = load_resources()[name]
    delivered, missing, invalid = tally.get((name, batch), (None, 0, 0))
    latest = tables.read(spark, settings, name).agg(F.max("_ingested_at")).collect()[0][0]
    age = (now - latest).total_seconds() / 86400 if latest else float("inf")
    counts = Counts(
        delivered=int(delivered) if delivered else checked + missing + invalid,
        checked=checked,
        missing=missing + _unexpected(results, "completeness"),
        invalid=invalid + _unexpected(results, "validity"),
        inconsistent=_unexpected(results, "consistency"),
        age_days=max(0.0, age),
        update_cycle=resource.update_cycle,
    )
    return score(counts)


def validate_bronze(
    spark: SparkSession, settings: Settings, name: str, batch: str, run: QualityRun,
    as_of: dt.date, now: dt.datetime, tally: IngestTally | None = None,
) -> None:  # fmt: skip
    """Check one bronze batch; quarantine its failing rows once; ledger, result, score."""
    from pyspark.sql import functions as F

    resource = load_resources()[name]
    checks = checks_for(name, as_of)
    frame = tables.read(spark, settings, name).where(F.col("_batch_id") == batch)
    # Read and derived once: GX's two passes, the quarantine and the ledger use the same rows.
    # Cached, not checkpointed: each GX metric reads a few columns, and the columnar cache
    # reads only those (at 1M rows GX's first pass took 15 s over a checkpoint, 8 s cached).
    frame = with_facts(frame, [d for c in checks for d in c.derived]).persist()
    try:
        results = validator(docs_dir(settings)).validate(frame, name, checks, BRONZE_KEY,
                                                         cache=False)  # fmt: skip
        lineage = {"_source_id": None, "_resource": name, "_source_file": None,
                   "_batch_id": batch, "_row_number": None, "_ingested_at": None,
                   "_run_id": run.run_id}  # fmt: skip
        rejected = None
        # Keyed by resource and batch: a rerun (datong quality) reports again, quarantines once.
        transaction = f"quality:{name}:{batch}"
        if any(r.failing for r in results):  # else nothing to quarantine, and no empty commit
            rejected = quarantine_rows(
                spark, frame, results, BRONZE_KEY, resource.element_names, lineage
            ).localCheckpoint()
        files = _reconcile(frame, rejected)
    finally:
        frame.unpersist()
    if rejected is not None:
        tables.append(rejected, settings, REJECTED, transaction)
    ledger = [(run.run_id, name, batch, f, n, good, bad, now) for f, n, good, bad in files]
    tables.append(spark.createDataFrame(ledger, LEDGER_SCHEMA), settings, LEDGER, transaction)
    run.results[name] = results
    run.quarantined[name] = sum(bad for *_, bad in files)
    checked = sum(n for _, n, _, _ in files)
    if tally is None:
        tally = ingest_tally(spark, settings, [name])
    run.scores[name] = bronze_score(spark, settings, name, batch, checked, results, now, tally)


def validate_gold(
    spark: SparkSession, settings: Settings, name: str, run: QualityRun, as_of: dt.date,
    now: dt.datetime,
    frame: DataFrame | None = None,
) -> None:  # fmt: skip
    """Check one gold table: results, its failing rows listed, its publication gate.

    ``frame`` replaces the table's rows (a candidate version not yet written, or a test's).
    """
    frame = frame if frame is not None else tables.read(spark, settings, name)
    key = GOLD_KEYS[name]
    results = validator(docs_dir(settings)).validate(frame, name, checks_for(name, as_of), key)
    lineage = {"_source_id": "gold", "_resource": name, "_source_file": name,
               "_batch_id": run.run_id, "_row_number": None, "_ingested_at": now,
               "_run_id": run.run_id}  # fmt: skip
    columns = [c for c in frame.columns if not c.startswith("_")]
    if any(r.failing for r in results):
        rejected = quarantine_rows(spark, frame, results, key, columns, lineage)
        tables.append(rejected, settings, REJECTED, f"quality:{name}:{run.run_id}")
    run.results[name] = results
    run.quarantined[name] = sum(len(r.failing) for r in results)
    run.gates[name] = gate_of(name, results, run.run_id, now)
    gate = run.gates[name]
    if not gate.passed:
        log.warning("%s is not published: %s", name, gate.reasons)


def latest_batch(spark: SparkSession, settings: Settings, name: str) -> str | None:
    from pyspark.sql import functions as F

    if not tables.exists(spark, settings, name):
        return None
    return tables.read(spark, settings, name).agg(F.max("_batch_id")).collect()[0][0]


def write_run(spark: SparkSession, settings: Settings, run: QualityRun, now: dt.datetime) -> None:
    """The run's results, scores and gates, each appended once (keyed by the run id)."""
    rows = [row for name, results in run.results.items()
            for row in _result_rows(run.run_id, name, results, now)]  # fmt: skip
    transaction = f"quality-run:{run.run_id}"
    if rows:
        tables.append(spark.createDataFrame(rows, RESULT_SCHEMA), settings, RESULT, transaction)
    scores = [(run.run_id, name, now, s.completeness, s.validity, s.consistency, s.timeliness,
               s.score) for name, s in run.scores.items()]  # fmt: skip
    if scores:
        tables.append(spark.createDataFrame(scores, SCORE_SCHEMA), settings, SCORE, transaction)
    gates = [(run.run_id, g.resource, now, g.passed, g.reasons) for g in run.gates.values()]
    if gates:
        tables.append(spark.createDataFrame(gates, GATE_SCHEMA), settings, GATE, transaction)


def run(
    names: list[str] | None = None,
    settings: Settings | None = None,
    spark: SparkSession | None = None,
    batches: dict[str, list[str]] | None = None,
    as_of: dt.date | None = None,
    register: bool = True,
) -> QualityRun:
    """Validate ``names`` (default: every bronze resource and gold table that exists).

    A bronze resource is checked for the batches in ``batches`` (default: its latest).
    """
    settings = settings or load_settings()
    if spark is None:
        from datong.spark import spark_session

        spark = spark_session(settings, "quality")
    from quality.checks import tables_checked

    now = dt.datetime.now()
    as_of = as_of or now.date()
    result = QualityRun(uuid.uuid4().hex)
    present = [n for n in names or tables_checked() if tables.exists(spark, settings, n)]
    bronze = [n for n in present if n not in GOLD_KEYS]
    tally = ingest_tally(spark, settings, bronze) if bronze else {}
    for name in present:
        if name in GOLD_KEYS:
            validate_gold(spark, settings, name, result, as_of, now)
            continue
        wanted = (batches or {}).get(name) or [latest_batch(spark, settings, name)]
        for batch in sorted(b for b in wanted if b):
            validate_bronze(spark, settings, name, batch, result, as_of, now, tally)
    write_run(spark, settings, result, now)
    result.docs = str(validator(docs_dir(settings)).build_docs())
    if register:
        from jobs.ingest import register_in_trino

        register_in_trino(settings, [t for t in WRITTEN if tables.exists(spark, settings, t)])
    return result


def check_gold(
    settings: Settings | None = None,
    spark: SparkSession | None = None,
    as_of: dt.date | None = None,
) -> QualityRun:
    """The gold tables' suites after a build: their gates decide what may be published."""
    return run(list(GOLD_KEYS), settings, spark, as_of=as_of)


def failing_keys(
    spark: SparkSession, settings: Settings, name: str, frame: DataFrame, as_of: dt.date
) -> set[tuple[str, int]]:
    """The rows of ``frame`` (bronze ``name``'s columns) a row-level ``fail`` check of its
    suite rejects, by source file and row number: for rows that reach silver without a
    bronze batch's check (a quarantined row linked to its person, ``jobs.keyless``)."""
    checks = [c for c in checks_for(name, as_of) if c.row_level and c.severity == "fail"]
    if not checks or frame.isEmpty():
        return set()
    results = validator(docs_dir(settings)).validate(frame, name, checks, BRONZE_KEY, docs=False)
    return {(key["_source_file"], int(key["_row_number"])) for r in results for key in r.failing}


def quality_rejected_keys(spark: SparkSession, settings: Settings, name: str) -> DataFrame | None:
    """Lineage of the rows of bronze ``name`` quarantined by quality: kept out of silver."""
    from pyspark.sql import functions as F

    if not tables.exists(spark, settings, REJECTED):
        return None
    rejected = tables.read(spark, settings, REJECTED).where(F.col("_resource") == name)
    return rejected.select(*BRONZE_KEY).distinct()

"""Linkage without keys: rows quarantined without a usable person ID, linked and used.

A row of a ``population.LINKABLE`` source quarantined for an invalid or a missing person ID
(``INGEST-007``, ``INGEST-002``) may still plainly describe a person. In each batch of a
population build, after the batch's silver MERGEs and before the gold rebuild:

1. ``link_without_keys`` offers Splink (``jobs.linkage``) the rows of that batch and earlier
   with no decision yet, against the persons of the 公安 register in silver as the batch
   leaves it. A row is offered again when a reviewer's verdict is newer than the one its
   decision used (the verdict then decides it), and when Splink left it ``unmatched``
   against a register that has changed since.
2. ``apply_links`` MERGEs each ``linked`` row into its source's silver table as that
   person's row, after ingest's rules and the bronze quality suite's ``fail`` checks have
   passed it again; the persons linked are rebuilt with the batch.
3. ``record_links``, after the batch's build ledger row, writes the decisions to
   ``population.linkage`` (every decision is kept; a row's current one is its latest,
   ``linkage_decisions``). A build that fails before that decides and applies the rows again.

``record_verdict`` keeps a data engineer's verdict (``datong linkage decide``) in
``ops.linkage_verdict``, which a full build does not clear.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from datong import tables
from datong.contracts import load_resources
from jobs import population, silver

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from datong.settings import Settings

log = logging.getLogger(__name__)

LINKAGE = "population.linkage"
#: A reviewer's verdict on the linkage of one quarantined row (``datong linkage decide``).
#: Not a library table: it outlives a full build, and decides the row whenever it is offered.
VERDICTS = "ops.linkage_verdict"
#: A reviewer's verdict that the row is nobody in the library.
REJECTED = "rejected"
#: ``decided_by`` of a decision Splink made.
SPLINK = "splink"
#: About this many golden persons are sampled for linkage's u probabilities (Splink draws
#: its 2 million pairs from about 2,000 of them). A smaller library is its own sample.
LINKAGE_SAMPLE = 50_000
_ROW = ["_source_file", "_row_number"]
_SCHEMA = (
    "batch_id string, source string, source_file string, row_number long, "
    "delivered_id string, name string, birth_date string, person_id string, "
    "match_probability double, decision string, decided_by string, register_state string, "
    "verdict_at long, candidate_id string"
)


class LinkageError(ValueError):
    """A verdict that cannot be taken: no such row, or no such person."""


def linkage_decisions(spark: SparkSession, settings: Settings) -> DataFrame | None:
    """The current decision on each row offered to linkage: its latest in ``population.linkage``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if not tables.exists(spark, settings, LINKAGE):
        return None
    rows = tables.read(spark, settings, LINKAGE)
    # Columns a table from before dated decisions and verdicts lacks.
    later = {"decided_by": F.lit(SPLINK), "decided_at": F.lit(None).cast("timestamp"),
             "register_state": F.lit(None).cast("string"),
             "verdict_at": F.lit(None).cast("timestamp"),
             "candidate_id": F.lit(None).cast("string")}  # fmt: skip
    rows = rows.withColumns({c: v for c, v in later.items() if c not in rows.columns})
    latest = Window.partitionBy("source_file", "row_number").orderBy(
        F.col("decided_at").desc_nulls_last()
    )
    return rows.withColumn("_n", F.row_number().over(latest)).where("_n = 1").drop("_n")


def record_verdict(
    spark: SparkSession,
    settings: Settings,
    record: str,
    person_id: str | None,
    reviewer: str,
    note: str | None = None,
) -> dict[str, Any]:
    """Keep a reviewer's verdict on row ``record`` (``<source file>#<row number>``).

    With ``person_id`` the row is that person's (who must be in the 公安 register); without,
    it is nobody's (``rejected``). The next build decides the row by it, and a linked row
    reaches gold. Returns the row's current decision, which the verdict overrides.
    """
    from pyspark.sql import functions as F

    file, _, number = record.rpartition("#")
    if not file or not number.isdigit():
        raise LinkageError(f"{record!r}: expected <source file>#<row number>")
    decisions = linkage_decisions(spark, settings)
    current = None
    if decisions is not None:
        current = decisions.where(
            (F.col("source_file") == file) & (F.col("row_number") == int(number))
        ).first()
    if current is None:
        raise LinkageError(f"{record}: no row of that name was offered to linkage")
    if current["decision"] == "linked":
        # Its row is in silver and gold already; taking it back is not built yet.
        raise LinkageError(f"{record}: linked to {current['person_id']} already")
    if person_id is not None:
        person_id = person_id.strip().upper()
        register = tables.read(spark, settings, population.REGISTER)
        if register.where(F.col("person_id") == person_id).isEmpty():
            raise LinkageError(f"{person_id}: no such person in the household register")
    frame = spark.createDataFrame(
        [(file, int(number), person_id, "linked" if person_id else REJECTED, reviewer, note,
          dt.datetime.now())],
        "source_file string, row_number long, person_id string, verdict string, "
        "reviewer string, note string, decided_at timestamp",
    )  # fmt: skip
    tables.append(frame, settings, VERDICTS)
    return current.asDict()


def _verdicts(spark: SparkSession, settings: Settings) -> DataFrame | None:
    """The latest verdict on each row a reviewer decided, with its time (``verdict_at``)."""
    from pyspark.sql import functions as F

    if not tables.exists(spark, settings, VERDICTS):
        return None
    return (
        tables.read(spark, settings, VERDICTS)
        .groupBy(
            F.col("source_file").alias("_source_file"), F.col("row_number").alias("_row_number")
        )  # fmt: skip
        .agg(
            F.max_by(F.struct("person_id", "verdict", "reviewer"), "decided_at").alias("v"),
            F.max("decided_at").alias("verdict_at"),
        )
        # Also as microseconds since the epoch: carried through pandas without a time zone.
        .select(*_ROW, "v.*", "verdict_at", F.unix_micros("verdict_at").alias("verdict_us"))
    )


def _rejected(spark: SparkSession, settings: Settings) -> DataFrame | None:
    """Quarantined rows of the linkable sources whose person ID is invalid or missing."""
    from pyspark.sql import functions as F

    from jobs.ingest import QUARANTINE

    if not tables.exists(spark, settings, QUARANTINE):
        return None
    rules = [population.INVALID_ID_RULE, population.MISSING_ID_RULE]
    return (
        tables.read(spark, settings, QUARANTINE)
        .where(F.col("_resource").isin(list(population.LINKABLE)))
        .where(
            F.exists("problems", lambda p: (p["field"] == "person_id") & p["rule_id"].isin(rules))
        )
    )


@dataclass
class Offered:
    """The quarantined rows to offer, and the current decisions to refresh, not replace."""

    rows: DataFrame
    #: Rows Splink left unmatched against an older register: (file, row, decided_at).
    unmatched: DataFrame | None
    verdicts: DataFrame | None


def offered(spark: SparkSession, settings: Settings) -> Offered | None:
    """The rows to offer now (any batch): undecided, a newer verdict, or unmatched against a
    register that changed since. None without a register or a quarantine."""
    from pyspark.sql import functions as F

    rejected = _rejected(spark, settings)
    if rejected is None or not tables.exists(spark, settings, population.REGISTER):
        return None
    verdicts = _verdicts(spark, settings)
    decisions = linkage_decisions(spark, settings)
    if decisions is None:
        return Offered(rejected, None, verdicts)
    state = tables.state(spark, settings, population.REGISTER)
    current = decisions.select(
        F.col("source_file").alias("_source_file"), F.col("row_number").alias("_row_number"),
        "decision", "decided_by", "decided_at", "register_state",
        F.col("verdict_at").alias("_used"),
    )  # fmt: skip
    unmatched = (
        (F.col("decision") == "unmatched")
        & (F.col("decided_by") == SPLINK)
        & ~F.col("register_state").eqNullSafe(F.lit(state))
    )
    reopen = unmatched
    if verdicts is not None:
        # A verdict newer than the one the decision used (none: Splink's) decides the row.
        newer = verdicts.select(*_ROW, "verdict_at")
        current = current.join(newer, _ROW, "left")
        pending = F.col("verdict_at").isNotNull() & (
            F.col("_used").isNull() | (F.col("_used") < F.col("verdict_at"))
        )
        reopen = pending | unmatched
    current = current.withColumn("_reopen", F.coalesce(reopen, F.lit(False))).localCheckpoint()
    settled = current.where(~F.col("_reopen")).select(*_ROW)
    # Refreshed in place if decided the same again (a decision from before dating: appended).
    stale = current.where(F.col("_reopen") & unmatched & F.col("decided_at").isNotNull())
    stale = stale.select(*_ROW, "decided_at")
    return Offered(rejected.join(settled, _ROW, "left_anti"), stale, verdicts)


def batches_to_offer(spark: SparkSession, settings: Settings) -> set[str]:
    """The batches with a row to offer: a build visits them in batch order."""
    found = offered(spark, settings)
    if found is None:
        return set()
    return {row["_batch_id"] for row in found.rows.select("_batch_id").distinct().collect()}


@dataclass
class Links:
    """Linkage decisions on quarantined rows, not yet recorded, and the rows linked."""

    counts: dict[str, int]
    #: The new rows of ``population.linkage`` (pandas).
    decisions: Any = None
    #: Per bronze table, the delivered values of each linked row, its person ID the linked
    #: person's (``population.linked_values``).
    values: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: Splink's unmatched decisions made again with the same outcome: their register state
    #: is brought up to date instead of a new row (source_file, row_number, decided_at).
    refreshed: list[tuple[str, int, Any]] = field(default_factory=list)
    register_state: str | None = None


def link_without_keys(
    spark: SparkSession, settings: Settings, up_to: str | None = None
) -> Links | None:
    """Offer the rows of batches up to ``up_to`` (all when None) that ``offered`` names to
    Splink, against the persons of the 公安 register in silver as it is now (a golden
    person's identity comes only from there). None when there is nothing to offer."""
    from pyspark.sql import functions as F

    from jobs.linkage import DECISIONS, blocking_values, link_records

    found = offered(spark, settings)
    if found is None:
        return None
    rejected = found.rows
    if up_to is not None:
        rejected = rejected.where(F.col("_batch_id") <= F.lit(up_to))
    rejected_rows = rejected.collect()
    resources = load_resources()
    candidates = population.linkage_candidates(rejected_rows, resources)
    if candidates.empty:
        return None
    register_state = tables.state(spark, settings, population.REGISTER)
    batches = {f"{r['_source_file']}#{r['_row_number']}": r["_batch_id"] for r in rejected_rows}
    persons = tables.read(spark, settings, population.REGISTER).select(
        "person_id", "name", "gender", F.col("birth_date").cast("string"), "division_code",
        "address",
    )  # fmt: skip
    population_size = persons.count()
    # Only the persons blocking can pair with a candidate leave Spark, and a sample of all
    # for u: a batch's few hundred candidates against ten million persons need a few
    # thousand of them, not all (as Arrow, 1.1 GB, collected in every batch).
    blocked = F.lit(False)
    for column, values in blocking_values(candidates).items():
        blocked = blocked | F.col(column).isin(values)
    every = max(1, population_size // LINKAGE_SAMPLE)
    sample = persons.where(F.pmod(F.xxhash64("person_id"), F.lit(every)) == 0)
    linked = link_records(
        candidates,
        persons.where(blocked).toArrow(),
        sample=sample.toArrow(),
        population=population_size,
    )
    rows = candidates.merge(linked.links, on="record_id")
    rows["batch_id"] = rows["record_id"].map(batches)
    rows["decided_by"] = SPLINK
    rows["register_state"] = register_state
    rows["verdict_at"] = None
    wanted = set(rows["record_id"])
    if found.verdicts is not None:
        for verdict in found.verdicts.collect():
            record = f"{verdict['_source_file']}#{verdict['_row_number']}"
            if record in wanted:
                at = rows["record_id"] == record
                rows.loc[at, "person_id"] = verdict["person_id"]
                rows.loc[at, "decision"] = verdict["verdict"]
                rows.loc[at, "decided_by"] = verdict["reviewer"]
                rows.loc[at, "verdict_at"] = verdict["verdict_us"]
    counts = {"candidates": len(rows), **dict.fromkeys(DECISIONS, 0)}
    counts.update({k: int(v) for k, v in rows["decision"].value_counts().items()})
    refreshed = []
    if found.unmatched is not None:
        again = rows[(rows["decision"] == "unmatched") & (rows["decided_by"] == SPLINK)]
        stale = {
            f"{r['_source_file']}#{r['_row_number']}": (r["_source_file"], r["_row_number"],
                                                       r["decided_at"])
            for r in found.unmatched.collect()
        }  # fmt: skip
        same = [record for record in again["record_id"] if record in stale]
        refreshed = [stale[record] for record in same]
        rows = rows[~rows["record_id"].isin(same)]
    values = population.linked_values(rejected_rows, rows, resources)
    return Links(counts, rows, values, refreshed, register_state)


def apply_links(
    spark: SparkSession,
    settings: Settings,
    links: Links | None,
    applied: dict[str, set[str]] | None = None,
    as_of: dt.date | None = None,
) -> dict[str, DataFrame]:
    """MERGE the linked rows into silver as their persons' rows; the rows to rebuild, by table.

    Each row goes through ingest's rules again with the linked person's ID, and through the
    bronze quality suite's ``fail`` checks (as of ``as_of``); one that breaks either stays in
    quarantine only. A row is MERGEd like its batch's own rows: the latest version of its
    key wins, and a row of a batch older than a complete snapshot built already brings back
    no key it retired (``applied``: the batches built as complete snapshots, per bronze
    table). The persons linked are rebuilt whether or not silver changed: a build that
    failed after this MERGE left them as they were. ``links.counts["applied"]``: the rows
    that passed the rules.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import StructType

    from jobs import rules
    from jobs.quality import failing_keys
    from jobs.staging import FIELD_COUNT

    changed: dict[str, DataFrame] = {}
    if links is None or not links.values:
        return changed
    resources = load_resources()
    passed = 0
    for name, values in sorted(links.values.items()):
        resource = resources[name]
        columns = [e.name for e in resource.elements]
        schema = ", ".join(f"`{c}` string" for c in columns)
        schema += ", _source_file string, _batch_id string, _row_number long"
        staged = spark.createDataFrame(
            [[v.get(c) for c in columns] + [v["_source_file"], v["_batch_id"], v["_row_number"]]
             for v in values],
            StructType.fromDDL(schema),
        ).withColumn(FIELD_COUNT, F.lit(len(columns)))  # fmt: skip
        checked = rules.transform(staged, resource)
        good = checked.where(F.size(rules.RULES) == 0).drop(rules.RULES, FIELD_COUNT)
        good = good.localCheckpoint()
        failing = failing_keys(spark, settings, name, good, as_of or dt.date.today())
        if failing:
            bad = spark.createDataFrame(sorted(failing), "_source_file string, _row_number long")
            good = good.join(bad, _ROW, "left_anti").localCheckpoint()
        count = good.count()
        if count < len(values):
            log.warning(
                "%s: %d linked row(s) break another rule and stay in quarantine only",
                name, len(values) - count,
            )  # fmt: skip
        passed += count
        for (batch,) in sorted(good.select("_batch_id").distinct().collect()):
            rows = good.where(F.col("_batch_id") == batch)
            later = any(b > batch for b in (applied or {}).get(name, ()))
            merged = silver.merge_batch(
                spark, settings, resource, rows, None, None, None, after_snapshot=later
            )
            update = merged.changed.select(*columns).unionByName(rows.select(*columns))
            add_changed(changed, merged.table, update)
    links.counts["applied"] = passed
    return changed


def add_changed(changed: dict[str, DataFrame], table: str, rows: DataFrame) -> None:
    """Add ``rows`` (contract columns) to the changed rows of ``table``."""
    if table in changed:
        # A table the batch created has its changed rows with their lineage: not needed here.
        rows = changed[table].select(*rows.columns).unionByName(rows)
    changed[table] = rows


def record_links(spark: SparkSession, settings: Settings, links: Links | None) -> None:
    """Append the new decisions to ``population.linkage``; an unmatched decision made again
    against a changed register gets that register's state instead of a new row."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from datong.storage import spark_location
    from jobs.derived import from_pandas

    if links is None:
        return
    if links.decisions is not None and len(links.decisions):
        frame = from_pandas(spark, links.decisions, _SCHEMA).withColumns({
            "verdict_at": F.timestamp_micros("verdict_at"),
            "decided_at": F.lit(dt.datetime.now()),
        })  # fmt: skip
        # Columns added since the first decisions: a table from before gains them.
        tables.append(frame, settings, LINKAGE, merge_schema=True)
    if links.refreshed:
        source = spark.createDataFrame(
            links.refreshed, "source_file string, row_number long, decided_at timestamp"
        )
        condition = (
            "t.source_file = s.source_file AND t.row_number = s.row_number "
            "AND t.decided_at = s.decided_at"
        )
        (
            DeltaTable.forPath(spark, spark_location(settings, LINKAGE))
            .alias("t")
            .merge(F.broadcast(source).alias("s"), condition)
            .whenMatchedUpdate(set={"register_state": F.lit(links.register_state)})
            .execute()
        )


def add_counts(total: dict[str, int], counts: dict[str, int]) -> None:
    for name, count in counts.items():
        total[name] = total.get(name, 0) + count

"""Build the base libraries: bronze batches → silver → golden records, history and conflicts.

For each bronze batch not yet built (``ops.build_ledger`` records every source file a build
consumed), in batch order: MERGE it into silver, collect the subjects whose rows changed,
and rebuild only those subjects' golden rows, history, conflicts and exclusions. A full
build (``full=True``) clears the library's tables and the ledger first and then does the
same over every batch, so a full and an incremental build over the same inputs give the
same tables. The ledger row is written last: a crash anywhere before it is redone, with the
same result, by the next run. Before a batch's first attempt, each silver table's state is
recorded (``ops.build_start``): a rerun finds the batch's changes against that state, not
against the silver rows the failed attempt already MERGEd, so it rebuilds the same subjects.

``datong build population legal_person`` runs it; so does the Airflow DAG
``build_base_libraries``, scheduled on the bronze tables' Assets.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from datong import tables
from datong.contracts import load_resources
from datong.settings import Settings, load_settings
from jobs import (
    credit,
    geo,
    golden,
    legal_person,
    license,
    materials,
    population,
    silver,
    snapshot,
)
from jobs.affected import Affected
from jobs.quality import quality_rejected_keys
from quality.checks import BRONZE_KEY

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

LEDGER = "ops.build_ledger"
#: Each silver table's state (``tables.state``) before a batch's first build attempt.
STARTS = "ops.build_start"
#: The population library's state (``tables.state``) each time every legal person was
#: compared with it: a build whose population is still in that state skips the comparison.
RELINK_LEDGER = "ops.relink_ledger"
#: The state of the libraries a derived library read, each time it was rebuilt: a build
#: rebuilds it when they changed since, even with no batch of its own (the Airflow DAG
#: builds the population first, in a task of its own).
DERIVED_LEDGER = "ops.derived_ledger"
ORDER = ("population", "legal_person", "geo", "credit", "license", "materials")
MODULES: dict[str, Any] = {"population": population, "legal_person": legal_person}
#: Whether a legal person's representative is in the population library.
LINKED = "legal_representative_linked"
#: Libraries derived from silver and the golden ones: rebuilt whole, written by MERGE.
DERIVED: dict[str, Any] = {"geo": geo, "credit": credit, "license": license,
                           "materials": materials}  # fmt: skip


class AccountingError(RuntimeError):
    """A source's rows did not all end in the library or its exclusion list."""


@dataclass
class LibraryResult:
    library: str
    batch_id: str
    affected: int = 0
    subjects: int = 0
    conflicts: int = 0
    unmatched: int = 0
    source_rows: dict[str, int] = field(default_factory=dict)
    #: The subjects rebuilt (none when nothing was).
    keys: Affected | None = field(default=None, repr=False, compare=False)


@dataclass
class BuildResult:
    libraries: list[str]
    batches: list[str] = field(default_factory=list)
    silver: list[silver.SilverResult] = field(default_factory=list)
    results: list[LibraryResult] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    derived: dict[str, dict[str, int]] = field(default_factory=dict)
    views: list[str] = field(default_factory=list)
    #: Whether every legal person was compared with the population library.
    relinked_all: bool = False
    #: Linkage decisions (linked, review, unmatched) on rows quarantined without a valid ID.
    linkage: dict[str, int] = field(default_factory=dict)


def library_tables(library: str) -> list[str]:
    if library in DERIVED:
        return list(DERIVED[library].TABLES)
    rules = golden.load_rules(library)
    names = [rules.table, rules.table + "_history", rules.schema("conflict"),
             rules.schema("correction_worklist"), rules.schema("unmatched")]  # fmt: skip
    if library == "population":
        names += [rules.schema("relationship"), rules.schema("linkage")]
    return names


def _bronze_sources(library: str) -> list[str]:
    if library in DERIVED:
        return list(DERIVED[library].SOURCES)
    rules = golden.load_rules(library)
    return sorted({"bronze." + s.table.split(".", 1)[1] for s in rules.sources.values()})


def _consumed(spark: SparkSession, settings: Settings) -> set[tuple[str, str]]:
    if not tables.exists(spark, settings, LEDGER):
        return set()
    rows = tables.read(spark, settings, LEDGER).select("bronze", "source_file").distinct()
    return {(r["bronze"], r["source_file"]) for r in rows.collect()}


def _snapshots_applied(spark: SparkSession, settings: Settings) -> dict[str, set[str]]:
    """Per bronze table, the batches built as complete full snapshots (``retired`` set)."""
    from pyspark.sql import functions as F

    if not tables.exists(spark, settings, LEDGER):
        return {}
    ledger = tables.read(spark, settings, LEDGER)
    if "retired" not in ledger.columns:
        return {}
    rows = ledger.where(F.col("retired").isNotNull()).select("bronze", "batch_id").distinct()
    applied: dict[str, set[str]] = {}
    for row in rows.collect():
        applied.setdefault(row["bronze"], set()).add(row["batch_id"])
    return applied


def _ingested_files(spark: SparkSession, settings: Settings) -> dict[str, set[str]] | None:
    """Each bronze table's source files with accepted rows, from the ingest ledger.

    An ingest appends a file's rows to bronze and then writes its ledger row, so a file is
    here once its rows are in bronze; a file whose ledger row is missing (an ingest that
    crashed between the two) waits for the rerun that completes it. Reading the ledger
    replaces a scan of every bronze table's file column (6 s warm at 1M persons). None without
    a ledger (bronze loaded by other means): then that column is scanned.
    """
    from pyspark.sql import functions as F

    from jobs.ingest import LEDGER as INGEST_LEDGER

    if not tables.exists(spark, settings, INGEST_LEDGER):
        return None
    rows = (
        tables.read(spark, settings, INGEST_LEDGER)
        .where((F.col("status") == "succeeded") & (F.col("accepted") > 0))
        .select("resource", "file")
        .distinct()
        .collect()
    )
    files: dict[str, set[str]] = {}
    for row in rows:
        files.setdefault(row["resource"], set()).add(row["file"])
    return files


def _reset(settings: Settings, names: list[str]) -> None:
    """Remove the tables: a full build writes them anew (their schema may have changed)."""
    from datong.storage import remove_table

    for name in names:
        remove_table(settings, name)


def _view_subjects(view: DataFrame, key: str, subjects: Affected) -> DataFrame:
    return view.join(subjects.named(key), key, "left_semi")


def _silver_frames(
    spark: SparkSession, settings: Settings, library: str, rules: golden.LibraryRules
) -> dict[str, DataFrame]:
    """The library's silver tables by name; an empty one for a source not delivered yet."""
    resources = load_resources()
    frames = {}
    for source in rules.sources.values():
        if tables.exists(spark, settings, source.table):
            frames[source.table] = tables.read(spark, settings, source.table)
        else:
            # A source that has delivered nothing yet contributes nothing, and says so.
            log.warning("%s: %s has no data yet", library, source.table)
            bronze_name = "bronze." + source.table.split(".", 1)[1]
            frames[source.table] = silver.empty(spark, resources[bronze_name])
    return frames


def _link_representatives(
    spark: SparkSession, settings: Settings, gold: DataFrame, subjects: Affected
) -> DataFrame:
    """``legal_representative_linked``: whether the representative is in the population library.

    A linked representative is also a fact of the entity's provenance, from ``population``,
    confirmed when the person's current version starts: an entity linked later starts a new
    version then. False while the population library has not been built: a later build
    links them.
    """
    from pyspark.sql import functions as F

    if not tables.exists(spark, settings, "population.person"):
        return gold.select(*[c for c in gold.columns if c != LINKED], F.lit(False).alias(LINKED))
    representatives = gold.select("legal_representative_id").distinct()
    people = (
        tables.read(spark, settings, "population.person")
        .select(
            F.col("person_id").alias("legal_representative_id"),
            F.col(golden.VALID_FROM).alias("_linked_since"),
            F.lit(True).alias("_present"),
        )  # fmt: skip
        # The affected entities' representatives only: no larger than the entities.
        .join(subjects.hinted(representatives), "legal_representative_id", "left_semi")
    )
    joined = gold.join(people, "legal_representative_id", "left")
    linked = F.coalesce("_present", F.lit(False))
    fact = F.create_map(
        F.lit(LINKED),
        F.struct(
            F.lit("population").alias("source"), F.col("_linked_since").alias(golden.CONFIRMED)
        ),
    )
    empty = F.create_map().cast("map<string,struct<source:string,confirmed_at:date>>")
    provenance = F.when(linked, F.map_concat(F.coalesce(golden.PROVENANCE, empty), fact)).otherwise(
        F.col(golden.PROVENANCE)
    )
    return joined.select(
        *[
            provenance.alias(c) if c == golden.PROVENANCE else c
            for c in gold.columns
            if c != LINKED
        ],
        linked.alias(LINKED),
    )


def _relinked(
    spark: SparkSession,
    settings: Settings,
    rules: golden.LibraryRules,
    persons: Affected | None,
) -> list[DataFrame]:
    """Legal persons whose ``legal_representative_linked`` the population library contradicts.

    A representative's person record can arrive (or leave) in a batch that says nothing about
    the entity, or in a build of the population library alone: the entity is rebuilt at the
    legal-person library's next build. With ``persons`` (the persons a batch rebuilt), only
    the entities they represent are compared; without, every entity is. Empty without either
    library's table.
    """
    from pyspark.sql import functions as F

    if not (
        tables.exists(spark, settings, rules.table)
        and tables.exists(spark, settings, "population.person")
    ):
        return []
    entities = tables.read(spark, settings, rules.table)
    people = tables.read(spark, settings, "population.person").select(
        F.col("person_id").alias("legal_representative_id"), F.lit(True).alias("_in_population")
    )
    if persons is not None:
        named = persons.named("legal_representative_id")
        entities = entities.join(named, "legal_representative_id", "left_semi")
        people = people.join(named, "legal_representative_id", "left_semi")
    # Null-safe: an entity written before the flag existed has none, and is rebuilt.
    stale = entities.join(people, "legal_representative_id", "left").where(
        ~F.col(LINKED).eqNullSafe(F.coalesce("_in_population", F.lit(False)))
    )
    return [stale.select(rules.key)]


def _add_linked_column(spark: SparkSession, settings: Settings, rules: golden.LibraryRules) -> None:
    """Entity tables written before the flag existed gain it (null until rebuilt)."""
    from datong.storage import spark_location

    for name in (rules.table, rules.table + "_history"):
        exists = tables.exists(spark, settings, name)
        if exists and LINKED not in tables.read(spark, settings, name).columns:
            location = spark_location(settings, name)
            spark.sql(f"ALTER TABLE delta.`{location}` ADD COLUMNS ({LINKED} boolean)")


def build_library(
    spark: SparkSession,
    settings: Settings,
    library: str,
    batch_id: str,
    changed: dict[str, DataFrame],
    persons: Affected | None = None,
    relink_all: bool = False,
    recorded_on: dt.date | None = None,
) -> LibraryResult:
    """Rebuild the subjects of ``library`` touched by the changed silver rows.

    For legal persons, also those whose representative's presence in the population library
    changed: among the entities of ``persons`` (the persons this batch rebuilt), or among
    all of them with ``relink_all``. ``recorded_on``: the build's date, which a change
    starts on in the history when its facts date it no later than the version it replaces
    (``golden.merge_history``).
    """
    from pyspark.sql import functions as F

    module = MODULES[library]
    rules = golden.load_rules(library)
    key = rules.key
    result = LibraryResult(library, batch_id)
    parts = [
        frame.select(F.col(column).alias(key))
        for table, frame in changed.items()
        for column in module.SUBJECT_COLUMNS.get(table, [])
    ]
    if library == "legal_person":
        _add_linked_column(spark, settings, rules)
        if relink_all or persons is not None:
            parts += _relinked(spark, settings, rules, None if relink_all else persons)
    if not parts:
        return result
    affected = parts[0]
    for part in parts[1:]:
        affected = affected.unionByName(part)
    affected = affected.where(F.col(key).isNotNull()).distinct()
    silver_frames = _silver_frames(spark, settings, library, rules)
    # Subjects whose views read other subjects' rows (a household's members) come together.
    affected = module.closure(silver_frames, changed, affected).localCheckpoint()
    result.affected = affected.count()
    if result.affected == 0:
        return result
    subjects = Affected(affected, key, result.affected, tables.exists(spark, settings, rules.table))
    result.keys = subjects
    if subjects.few:
        # An incremental batch: only the silver rows that can become the affected subjects'
        # are read, once each; every view and check below then works on those few rows.
        silver_frames = {
            table: frame.localCheckpoint()
            for table, frame in module.rows_for(silver_frames, subjects).items()
        }
    if library == "legal_person":
        all_views = module.views(silver_frames, rules.registries)
    else:
        all_views = module.views(silver_frames)
    views = {name: _view_subjects(v, key, subjects) for name, v in all_views.items()}
    facts = golden.facts(views, rules).localCheckpoint()
    chosen = golden.choose(facts, rules)
    subject_keys = golden.subjects(views, rules).localCheckpoint()
    gold = golden.golden(chosen, subject_keys, rules)
    if library == "legal_person":
        gold = _link_representatives(spark, settings, gold, subjects)
    # A representative entering the population library is a new version of the entity.
    derived = [LINKED] if library == "legal_person" else []
    gold = golden.version_hash(gold, rules, derived).localCheckpoint()
    conflict_rows = golden.conflicts(facts, chosen, rules).localCheckpoint()
    unmatched_rows = golden.unmatched(views, subject_keys, rules).localCheckpoint()
    result.subjects = gold.count()
    result.conflicts = conflict_rows.count()
    result.unmatched = unmatched_rows.count()
    # Accounting: every view row of an affected subject is in the library or unmatched.
    for name, counted in golden.account(views, subject_keys, unmatched_rows, rules).items():
        if name != rules.subjects_from and not counted.balanced:
            raise AccountingError(
                f"{library}/{name}: {counted.rows} rows, {counted.held} in the library, "
                f"{counted.listed} unmatched"
            )
        result.source_rows[name] = counted.rows
    current = gold.drop(golden.VERSION_HASH)
    few = subjects.few
    # A few subjects: their open versions only are read, by a broadcast of their keys.
    history_keys = F.broadcast(affected) if few else None
    # Subjects rebuilt without a row left: their history closes.
    gone = affected.join(gold.select(key), key, "left_anti")
    subject_affected = affected.withColumnRenamed(key, "subject")

    def replace(suffix: str, column: str, keys: DataFrame, rows: DataFrame) -> Callable[[], None]:
        name = rules.schema(suffix)
        return partial(golden.replace_for_subjects, spark, settings, name, column, keys, rows, few)

    history = rules.table + "_history"
    worklist = golden.worklist(conflict_rows, rules)
    writes = [
        partial(golden.merge_subjects, spark, settings, rules.table, key, affected, current, few),
        partial(
            golden.merge_history,
            spark,
            settings,
            history,
            key,
            gold,
            history_keys,
            recorded_on,
            gone,
        ),
        replace("conflict", "subject", subject_affected, conflict_rows),
        replace("correction_worklist", "subject", subject_affected, worklist),
        replace("unmatched", "subject", subject_affected, unmatched_rows),
    ]
    if library == "population":
        writes.append(replace("relationship", key, affected, population.relationships(current)))
    # Each write is to its own table and reads none of the others'.
    tables.together(spark, *writes)
    return result


#: About this many golden persons are sampled for linkage's u probabilities (Splink draws
#: its 2 million pairs from about 2,000 of them). A smaller library is its own sample.
LINKAGE_SAMPLE = 50_000


#: A reviewer's verdict on the linkage of one quarantined row (``datong linkage decide``).
#: Not a library table: it outlives a full build, and decides the row whenever it is offered.
VERDICTS = "ops.linkage_verdict"
#: A reviewer's verdict that the row is nobody in the library.
REJECTED = "rejected"
#: ``decided_by`` of a decision Splink made.
SPLINK = "splink"
_LINKAGE_SCHEMA = (
    "batch_id string, source string, source_file string, row_number long, "
    "delivered_id string, name string, birth_date string, person_id string, "
    "match_probability double, decision string, decided_by string, register_state string"
)


class LinkageError(ValueError):
    """A verdict that cannot be taken: no such row, or no such person."""


def linkage_decisions(spark: SparkSession, settings: Settings) -> DataFrame | None:
    """The current decision on each row offered to linkage: its latest in ``population.linkage``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if not tables.exists(spark, settings, "population.linkage"):
        return None
    rows = tables.read(spark, settings, "population.linkage")
    if "decided_at" not in rows.columns:  # a table from before decisions were dated
        rows = rows.withColumns({
            "decided_by": F.lit(SPLINK),
            "decided_at": F.lit(None).cast("timestamp"),
            "register_state": F.lit(None).cast("string"),
        })  # fmt: skip
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
    """The latest verdict on each row a reviewer decided."""
    from pyspark.sql import functions as F

    if not tables.exists(spark, settings, VERDICTS):
        return None
    return (
        tables.read(spark, settings, VERDICTS)
        .groupBy("source_file", "row_number")
        .agg(
            F.max_by(F.struct("person_id", "verdict", "reviewer"), "decided_at").alias("v"),
            F.max("decided_at").alias("verdict_at"),
        )
        .select("source_file", "row_number", "v.*", "verdict_at")
    )


@dataclass
class Links:
    """Linkage decisions on quarantined rows, not yet recorded, and the rows linked."""

    counts: dict[str, int]
    #: The rows of ``population.linkage`` to append (pandas).
    decisions: Any = None
    #: Per bronze table, the delivered values of each linked row, its person ID the linked
    #: person's (``population.linked_values``).
    values: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def link_without_keys(
    spark: SparkSession, settings: Settings, up_to: str | None = None
) -> Links | None:
    """Offer each quarantined row with an invalid or missing person ID to Splink linkage.

    The rows of batches up to ``up_to`` (all batches when None) that ``population.linkage``
    has no decision for, so a row quarantined in a batch that rebuilt no person (a file all
    of whose rows were rejected, say) is linked at the next build of the library. A row is
    offered again when a reviewer's verdict is newer than its decision (the verdict decides
    it), and when Splink left it ``unmatched`` against a register that has changed since.
    The persons are those of the 公安 register in silver (the golden persons' identity comes
    only from there) as it is now. None when there is no row to offer or no register yet;
    the decisions are recorded by ``record_links``, after the rows linked have reached gold
    (``apply_links``).
    """
    from pyspark.sql import functions as F

    from jobs.ingest import QUARANTINE
    from jobs.linkage import DECISIONS, blocking_values, link_records

    if not (
        tables.exists(spark, settings, QUARANTINE)
        and tables.exists(spark, settings, population.REGISTER)
    ):
        return None
    rules = [population.INVALID_ID_RULE, population.MISSING_ID_RULE]
    rejected = (
        tables.read(spark, settings, QUARANTINE)
        .where(F.col("_resource").isin(list(population.LINKABLE)))
        .where(
            F.exists("problems", lambda p: (p["field"] == "person_id") & p["rule_id"].isin(rules))
        )
    )
    if up_to is not None:
        rejected = rejected.where(F.col("_batch_id") <= F.lit(up_to))
    verdicts = _verdicts(spark, settings)
    decisions = linkage_decisions(spark, settings)
    row_key = ["_source_file", "_row_number"]
    register_state = tables.state(spark, settings, population.REGISTER)
    if decisions is not None:
        # Splink's ``unmatched`` holds while the register is as it was: a register that has
        # changed since may now hold the person (a household record corrected later).
        unmatched = (F.col("decision") == "unmatched") & (F.col("decided_by") == SPLINK)
        changed_since = ~F.col("register_state").eqNullSafe(F.lit(register_state))
        decided = decisions.where(~(unmatched & changed_since)).select(
            F.col("source_file").alias("_source_file"),
            F.col("row_number").alias("_row_number"),
            "decided_at",
        )
        if verdicts is not None:
            # A verdict newer than the row's decision offers the row again, to be decided by it.
            newer = verdicts.select(
                F.col("source_file").alias("_source_file"),
                F.col("row_number").alias("_row_number"),
                "verdict_at",
            )
            decided = decided.join(newer, row_key, "left").where(
                F.col("verdict_at").isNull()
                | (F.col("decided_at").isNotNull() & (F.col("decided_at") >= F.col("verdict_at")))
            )
        rejected = rejected.join(decided.select(*row_key), row_key, "left_anti")
    rejected_rows = rejected.collect()
    resources = load_resources()
    candidates = population.linkage_candidates(rejected_rows, resources)
    if candidates.empty:
        return None
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
    if verdicts is not None:
        wanted = set(rows["record_id"])
        for verdict in verdicts.collect():
            record = f"{verdict['source_file']}#{verdict['row_number']}"
            if record in wanted:
                at = rows["record_id"] == record
                rows.loc[at, "person_id"] = verdict["person_id"]
                rows.loc[at, "decision"] = verdict["verdict"]
                rows.loc[at, "decided_by"] = verdict["reviewer"]
    counts = {"candidates": len(rows), **dict.fromkeys(DECISIONS, 0)}
    counts.update(rows["decision"].value_counts().to_dict())
    values = population.linked_values(rejected_rows, rows, resources)
    return Links({k: int(v) for k, v in counts.items()}, rows, values)


def apply_links(
    spark: SparkSession,
    settings: Settings,
    links: Links | None,
    applied: dict[str, set[str]] | None = None,
) -> dict[str, DataFrame]:
    """MERGE the linked rows into silver as their persons' rows; the rows to rebuild, by table.

    Each row goes through ingest's rules again with the linked person's ID; one that still
    breaks a rule (a bad date as well as a bad ID) stays in quarantine only. A row is
    MERGEd like its batch's own rows: the latest version of its key wins, and a row of a
    batch older than a complete snapshot built already brings back no key it retired
    (``applied``: the batches built as complete snapshots, per bronze table). The persons
    linked are rebuilt whether or not silver changed: a build that failed after this MERGE
    left them as they were. ``links.counts["applied"]`` is set to the rows that passed.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import StructType

    from jobs import rules
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
            _add_changed(changed, merged.table, update)
    links.counts["applied"] = passed
    return changed


def record_links(spark: SparkSession, settings: Settings, links: Links | None) -> None:
    """Append the decisions to ``population.linkage``: each row is then decided."""
    from jobs.derived import from_pandas

    if links is None or links.decisions is None:
        return
    from pyspark.sql import functions as F

    frame = from_pandas(spark, links.decisions, _LINKAGE_SCHEMA)
    frame = frame.withColumn("decided_at", F.lit(dt.datetime.now()))
    # ``decided_by`` and ``decided_at`` came later: a table from before gains them.
    tables.append(frame, settings, "population.linkage", merge_schema=True)


def _add_changed(changed: dict[str, DataFrame], table: str, rows: DataFrame) -> None:
    """Add ``rows`` (contract columns) to the changed rows of ``table``."""
    if table in changed:
        # A table the batch created has its changed rows with their lineage: not needed here.
        rows = changed[table].select(*rows.columns).unionByName(rows)
    changed[table] = rows


def _add_counts(total: dict[str, int], counts: dict[str, int]) -> None:
    for name, count in counts.items():
        total[name] = total.get(name, 0) + count


def _silver_before(
    spark: SparkSession, settings: Settings, batch_id: str, names: list[str], resources: Any
) -> dict[str, DataFrame | None]:
    """Silver as each of ``names`` (bronze tables) was before this batch's first attempt.

    None where no unfinished attempt changed the table (silver is then read as it is). An
    attempt is unfinished while no build ledger row for the bronze table and batch is newer
    than its start row; the first build of the batch records the start rows.
    """
    from pyspark.sql import functions as F

    recorded: dict[str, str | None] = {}
    if tables.exists(spark, settings, STARTS):
        finished: dict[str, Any] = {}
        if tables.exists(spark, settings, LEDGER):
            built = tables.read(spark, settings, LEDGER).where(F.col("batch_id") == batch_id)
            for row in built.groupBy("bronze").agg(F.max("built_at").alias("at")).collect():
                finished[row["bronze"]] = row["at"]
        starts = tables.read(spark, settings, STARTS).where(F.col("batch_id") == batch_id)
        for row in sorted(starts.collect(), key=lambda r: r["started_at"]):
            done = finished.get(row["bronze"])
            if row["bronze"] not in recorded and (done is None or row["started_at"] > done):
                recorded[row["bronze"]] = row["silver_state"]
    now = dt.datetime.now()
    states = {name: tables.state(spark, settings, silver.silver_name(name)) for name in names}
    new = [(batch_id, n, states[n], now) for n in names if n not in recorded]
    if new:
        schema = "batch_id string, bronze string, silver_state string, started_at timestamp"
        tables.append(spark.createDataFrame(new, schema), settings, STARTS)
    before: dict[str, DataFrame | None] = {}
    for name in names:
        if name not in recorded or recorded[name] == states[name]:
            before[name] = None  # the first attempt, or one that wrote nothing to silver
        elif recorded[name] is None:
            log.info(
                "%s: completing batch %s, silver created by the failed attempt", name, batch_id
            )
            before[name] = silver.empty(spark, resources[name])
        else:
            table_id, version = str(recorded[name]).rsplit("@", 1)
            current = states[name]
            if current is None or current.rsplit("@", 1)[0] != table_id:
                before[name] = None  # the table was removed or made anew since
                continue
            log.info("%s: completing batch %s against silver version %s", name, batch_id, version)
            before[name] = tables.read(spark, settings, silver.silver_name(name), int(version))
    return before


def _write_ledger(
    spark: SparkSession, settings: Settings, build_id: str, rows: list[tuple[Any, ...]]
) -> None:
    schema = (
        "build_id string, bronze string, source_file string, batch_id string, "
        "bronze_rows long, silver_upserted long, superseded long, built_at timestamp, "
        "retired long"
    )
    # ``retired`` came later: a ledger from before gains the column.
    frame = spark.createDataFrame(rows, schema)
    tables.append(frame, settings, LEDGER, transaction=build_id, merge_schema=True)


def _last_relink(spark: SparkSession, settings: Settings) -> str | None:
    """The population state every legal person was last compared with."""
    from pyspark.sql import functions as F

    if not tables.exists(spark, settings, RELINK_LEDGER):
        return None
    row = tables.read(spark, settings, RELINK_LEDGER).orderBy(F.desc("relinked_at")).first()
    return None if row is None else str(row["population_state"])


def _record_relink(spark: SparkSession, settings: Settings, build_id: str, state: str) -> None:
    frame = spark.createDataFrame(
        [(state, build_id, dt.datetime.now())],
        "population_state string, build_id string, relinked_at timestamp",
    )
    tables.append(frame, settings, RELINK_LEDGER, transaction=f"relink:{build_id}")


def _upstream_state(
    spark: SparkSession, settings: Settings, library: str, known: dict[str, str | None]
) -> str:
    """The state (``tables.state``) of the main table of each library ``library`` reads.

    ``known`` keeps the states looked up already in this build: a library reads only tables
    of libraries before it in ``ORDER``, so a state once looked up holds for the loop.
    """
    names = [library_tables(up)[0] for up in DERIVED[library].UPSTREAM if library_tables(up)]
    for name in names:
        if name not in known:
            known[name] = tables.state(spark, settings, name)
    return ",".join(f"{name}={known[name]}" for name in names)


def _last_read(spark: SparkSession, settings: Settings) -> dict[str, str]:
    """Per derived library, the upstream state its last rebuild read."""
    from pyspark.sql import functions as F

    if not tables.exists(spark, settings, DERIVED_LEDGER):
        return {}
    latest = (
        tables.read(spark, settings, DERIVED_LEDGER)
        .groupBy("library")
        .agg(F.max_by("upstream_state", "built_at").alias("upstream_state"))
    )
    return {row["library"]: row["upstream_state"] for row in latest.collect()}


def _record_read(spark: SparkSession, settings: Settings, library: str, state: str) -> None:
    frame = spark.createDataFrame(
        [(library, state, dt.datetime.now())],
        "library string, upstream_state string, built_at timestamp",
    )
    tables.append(frame, settings, DERIVED_LEDGER)


def with_upstream(libraries: list[str]) -> list[str]:
    """``libraries`` and every library they read, in build order."""
    unknown = sorted(set(libraries) - set(ORDER))
    if unknown:
        raise ValueError(f"unknown base library: {', '.join(unknown)} (known: {', '.join(ORDER)})")
    wanted, todo = set(), list(libraries)
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo += list(DERIVED[name].UPSTREAM) if name in DERIVED else []
    return [name for name in ORDER if name in wanted]


def build(
    libraries: list[str],
    settings: Settings | None = None,
    spark: SparkSession | None = None,
    full: bool = False,
    register: bool = True,
    as_of: dt.date | None = None,
) -> BuildResult:
    """Build ``libraries`` and those they read, from every bronze batch not yet built.

    Statuses that depend on the date (license expiry, credit measures) are derived as of
    ``as_of``, the build date unless given.
    """
    from pyspark.sql import functions as F

    settings = settings or load_settings()
    as_of = as_of or dt.date.today()
    ordered = with_upstream(libraries)
    if spark is None:
        from datong.spark import spark_session

        spark = spark_session(settings, "build-" + "-".join(ordered))
    resources = load_resources()
    bronze_names = sorted({b for lib in ordered for b in _bronze_sources(lib)})
    if full:
        names = [silver.silver_name(b) for b in bronze_names]
        names += [t for lib in ordered for t in library_tables(lib)]
        _reset(settings, names)
        from delta.tables import DeltaTable

        from datong.storage import spark_location

        for ops in (LEDGER, STARTS):
            if tables.exists(spark, settings, ops):
                DeltaTable.forPath(spark, spark_location(settings, ops)).delete(
                    F.col("bronze").isin(bronze_names)
                )
    consumed = _consumed(spark, settings)
    ingested = _ingested_files(spark, settings)
    full_snapshots = snapshot.full_resources()
    applied = _snapshots_applied(spark, settings)
    result = BuildResult(ordered)
    pending: dict[str, DataFrame] = {}
    # (bronze, batch) → {source file: rows}, counted once per bronze table.
    delivered: dict[tuple[str, str], dict[str, int]] = {}
    for name in bronze_names:
        if not tables.exists(spark, settings, name):
            continue
        bronze = tables.read(spark, settings, name)
        done = {f for b, f in consumed if b == name}
        if ingested is not None:
            files = ingested.get(name, set())
        else:
            files = {r["_source_file"] for r in bronze.select("_source_file").distinct().collect()}
        if not files - done:
            continue
        # Named, not excluded: an ingest writes one source file's rows, so the file statistics
        # let Delta skip the files of batches built already instead of reading their rows.
        new = bronze.where(F.col("_source_file").isin(sorted(files - done)))
        # Rows the quality suite quarantined (a failed ``fail`` rule) never reach silver.
        rejected = quality_rejected_keys(spark, settings, name)
        if rejected is not None:
            new = new.join(rejected, BRONZE_KEY, "left_anti")
        pending[name] = new
        # One job reads the new rows for the batches, their files and the rows of each.
        for row in new.groupBy("_batch_id", "_source_file").count().collect():
            files_rows = delivered.setdefault((name, row["_batch_id"]), {})
            files_rows[row["_source_file"]] = row["count"]
    # Every entity is compared with the population library once per build, unless nothing
    # was committed to the population library since the last such comparison (the derived
    # libraries' builds, run one after the other, each include the legal-person library).
    relinked = False
    compared = _last_relink(spark, settings) if "legal_person" in ordered else None
    for batch_id in sorted({batch for _, batch in delivered}):
        build_id = f"build:{batch_id}:{uuid.uuid4().hex[:12]}"
        changed: dict[str, DataFrame] = {}
        ledger_rows: list[tuple[Any, ...]] = []
        arrived = {n: delivered[(n, batch_id)] for n in pending if (n, batch_id) in delivered}
        # One silver table per bronze table: the batch's MERGEs run at once.
        before = _silver_before(spark, settings, batch_id, list(arrived), resources)
        # A complete batch of a full snapshot retires the keys it no longer holds; a batch
        # older than a snapshot built already brings none of them back.
        snapshots = {
            name: snapshot.delivered_keys(spark, settings, resources[name], batch_id)
            for name in arrived if name in full_snapshots
        }  # fmt: skip
        merges = tables.together(spark, *(
            partial(
                silver.merge_batch, spark, settings, resources[name],
                pending[name].where(F.col("_batch_id") == batch_id), sum(files_rows.values()),
                before[name], snapshots.get(name),
                any(later > batch_id for later in applied.get(name, ())),
            )
            for name, files_rows in arrived.items()
        ))  # fmt: skip
        for (name, files_rows), merged in zip(arrived.items(), merges, strict=True):
            result.silver.append(merged)
            if merged.retired is not None:
                applied.setdefault(name, set()).add(batch_id)
            changed[merged.table] = merged.changed
            now = dt.datetime.now()
            for file in sorted(files_rows):
                # Counts are per batch of the resource; each file of the batch carries them.
                ledger_rows.append(
                    (build_id, name, file, batch_id, merged.bronze_rows, merged.upserted,
                     merged.superseded, now, merged.retired)
                )  # fmt: skip
        links = None
        if "population" in ordered:
            # Rows of this batch and earlier quarantined without a valid ID, linked to the
            # persons of the register as this batch leaves it, are rebuilt with the batch.
            links = link_without_keys(spark, settings, up_to=batch_id)
            for table, rows in apply_links(spark, settings, links, applied).items():
                _add_changed(changed, table, rows)
        persons: Affected | None = None
        population_state: str | None = None
        for library in ordered:
            if library not in MODULES:
                continue
            relink_all = False
            if library == "legal_person":
                population_state = tables.state(spark, settings, "population.person")
                # After the first comparison, only the entities of the persons rebuilt.
                relink_all = not relinked and population_state != compared
                result.relinked_all = result.relinked_all or relink_all
            built = build_library(
                spark, settings, library, batch_id, changed, persons, relink_all, as_of
            )
            result.results.append(built)
            if library == "population":
                persons = built.keys
            relinked = relinked or library == "legal_person"
        if links is not None:
            record_links(spark, settings, links)
            _add_counts(result.linkage, links.counts)
        _write_ledger(spark, settings, build_id, ledger_rows)
        if population_state is not None and population_state != compared:
            # Every entity has now been compared with the population as of that state: with
            # all of it just now, or with the persons it rebuilt since the last record.
            _record_relink(spark, settings, build_id, population_state)
            compared = population_state
        result.batches.append(batch_id)
    if "population" in ordered:
        # Rows of batches that brought no bronze row (a file all of whose rows were rejected).
        links = link_without_keys(spark, settings)
        changed = apply_links(spark, settings, links, applied)
        if changed:
            before_links = tables.state(spark, settings, "population.person")
            built = build_library(
                spark, settings, "population", "linkage", changed, recorded_on=as_of
            )
            result.results.append(built)
            if "legal_person" in ordered and relinked and before_links == compared:
                # Every entity was compared with the population before these persons changed.
                relinked_pass = build_library(
                    spark, settings, "legal_person", "linkage", {}, built.keys, recorded_on=as_of
                )
                if relinked_pass.affected:
                    result.results.append(relinked_pass)
                state = tables.state(spark, settings, "population.person")
                if state is not None and state != compared:
                    _record_relink(spark, settings, "linkage:" + uuid.uuid4().hex[:12], state)
                    compared = state
        if links is not None:
            record_links(spark, settings, links)
            _add_counts(result.linkage, links.counts)
    if "legal_person" in ordered and not relinked:
        # No new batch, but the population library may have changed since the last build.
        population_state = tables.state(spark, settings, "population.person")
        if population_state is not None and population_state != compared:
            pass_ = build_library(
                spark, settings, "legal_person", "relink", {}, relink_all=True, recorded_on=as_of
            )
            result.relinked_all = True
            if pass_.affected:
                result.results.append(pass_)
            _record_relink(spark, settings, "relink:" + uuid.uuid4().hex[:12], population_state)
    last_read, known = _last_read(spark, settings), {}
    for library in ordered:
        if library not in DERIVED:
            continue
        missing = [t for t in library_tables(library) if not tables.exists(spark, settings, t)]
        read = _upstream_state(spark, settings, library, known)
        if result.batches or missing or last_read.get(library) != read:
            # Derived libraries read whole tables: one rebuild after all the batches.
            log.info("%s: building as of %s", library, as_of)
            result.derived[library] = DERIVED[library].build(spark, settings, as_of)
            _record_read(spark, settings, library, read)
    written = [silver.silver_name(b) for b in bronze_names]
    written += [t for lib in ordered for t in library_tables(lib)] + [LEDGER]
    result.tables = [t for t in written if tables.exists(spark, settings, t)]
    if full:
        _forget_old_logs(settings)
    if register and (result.batches or result.derived):
        from jobs.ingest import register_in_trino

        if register_in_trino(settings, result.tables):
            result.views = create_views(settings, ordered)
    return result


def _forget_old_logs(settings: Settings) -> None:
    """A full build wrote its tables anew: a running Trino must drop what it cached."""
    from datong.query import flush_metadata_cache
    from datong.services.trino import trino_healthy

    if trino_healthy(settings):
        flush_metadata_cache(settings)


def create_views(settings: Settings, libraries: list[str]) -> list[str]:
    """The libraries' Trino views (credit's public penalties, the shared materials)."""
    views = []
    if "credit" in libraries:
        credit.create_views(settings)
        views.append(credit.PUBLIC_VIEW)
    if "materials" in libraries:
        created = materials.create_views(settings)
        views += [f"materials.{name}" for name, ok in created.items() if ok]
    return views

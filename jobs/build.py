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
    keyless,
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
    # Batches with quarantined rows to offer to linkage are visited too (a file all of whose
    # rows were rejected brings no bronze row), in batch order, as a full build would.
    linkable = keyless.batches_to_offer(spark, settings) if "population" in ordered else set()
    for batch_id in sorted({batch for _, batch in delivered} | linkable):
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
            links = keyless.link_without_keys(spark, settings, up_to=batch_id)
            for table, rows in keyless.apply_links(spark, settings, links, applied, as_of).items():
                keyless.add_changed(changed, table, rows)
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
        if ledger_rows:
            _write_ledger(spark, settings, build_id, ledger_rows)
        if links is not None:
            # After the ledger: a build that fails before this decides the rows again, and a
            # redo of the batch's MERGEs cannot overwrite a linked row without applying it anew.
            keyless.record_links(spark, settings, links)
            keyless.add_counts(result.linkage, links.counts)
        if population_state is not None and population_state != compared:
            # Every entity has now been compared with the population as of that state: with
            # all of it just now, or with the persons it rebuilt since the last record.
            _record_relink(spark, settings, build_id, population_state)
            compared = population_state
        result.batches.append(batch_id)
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

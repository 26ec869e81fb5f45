"""Golden records under one-data-one-source rules, shared by the base libraries.

A library declares in ``schemas/libraries/<library>.yaml`` which sources give each attribute
(in order of authority) and which only check it. Its job module turns silver tables into
*views*: one frame per source with the subject key, ``confirmed_at`` (the date the source
last confirmed the row) and one column per attribute it knows. From there everything is
generic and pure:

- ``facts``: per subject, the latest value of each (source, attribute), in wide form;
- ``choose``: per subject and attribute, the value of the most authoritative source that
  has one, with that source and its confirmation date (provenance);
- ``golden``: the chosen values as one typed row per subject, plus ``_provenance``;
- ``conflicts``: checking sources whose value differs from the chosen one;
- ``unmatched``: source rows whose subject is not in the library (the exclusion list).

``merge_subjects`` and ``merge_history`` write them for a set of affected subjects only, so
a new batch touches only the subjects it changes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

import yaml

from datong import tables
from datong.settings import REPO_ROOT

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from pyspark.sql import Column, DataFrame, SparkSession

    from datong.settings import Settings

LIBRARIES_DIR = REPO_ROOT / "schemas" / "libraries"
CONFIRMED = "confirmed_at"
PROVENANCE = "_provenance"
VALID_FROM, VALID_TO, VERSION_HASH = "valid_from", "valid_to", "_version_hash"
#: A MERGE source's join column: a key to match target rows, or null to insert the row.
MERGE_KEY = "_merge_key"
#: In ``merge_history``'s source: the date an open version closes.
CLOSES_AT = "_closes_at"
REGISTRY = "registry"


class RulesError(ValueError):
    """A library's rules file is inconsistent; the message names the file and the problem."""


@dataclass(frozen=True)
class Attribute:
    name: str
    type: str
    sources: tuple[str, ...]
    checks: tuple[str, ...] = ()
    #: Another attribute whose chosen source gives this one too, even with no value: a
    #: divorce registered by 民政 has no spouse, and 公安's spouse must not fill the gap.
    follows: str | None = None


@dataclass(frozen=True)
class SourceDecl:
    name: str
    table: str
    department: str
    title_zh: str


@dataclass(frozen=True)
class LibraryRules:
    library: str
    title_zh: str
    table: str
    key: str
    subjects_from: str
    sources: dict[str, SourceDecl]
    attributes: dict[str, Attribute]
    registries: dict[str, str] = field(default_factory=dict)

    def schema(self, suffix: str) -> str:
        """``<library>.<suffix>``: the library's other tables."""
        return f"{self.library}.{suffix}"

    def rule_text(self, attribute: str) -> str:
        item = self.attributes[attribute]
        text = f"{attribute}: " + " > ".join(item.sources)
        text += f", from the source chosen for {item.follows}" if item.follows else ""
        return text + (f"; checked by {', '.join(item.checks)}" if item.checks else "")

    def department(self, source: str) -> str:
        return self.sources[source].department if source in self.sources else source


@cache
def load_rules(library: str) -> LibraryRules:
    path = LIBRARIES_DIR / f"{library}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    sources = {n: SourceDecl(n, **d) for n, d in data["sources"].items()}
    registries = {str(k): v for k, v in (data.get("registries") or {}).items()}
    known = set(sources) | ({REGISTRY} if registries else set())
    attributes = {}
    for name, item in data["attributes"].items():
        attribute = Attribute(
            name, item["type"], tuple(item["sources"]), tuple(item.get("checks", ())),
            item.get("follows"),
        )  # fmt: skip
        for source in (*attribute.sources, *attribute.checks):
            if source not in known:
                raise RulesError(f"{path}: attribute {name} names unknown source {source!r}")
        if attribute.type not in ("string", "date", "boolean"):
            raise RulesError(f"{path}: attribute {name} has unknown type {attribute.type!r}")
        attributes[name] = attribute
    for name, attribute in attributes.items():
        leader = attributes.get(attribute.follows or "")
        if attribute.follows and (leader is None or leader.follows):
            raise RulesError(f"{path}: {name} follows {attribute.follows!r}, no leading attribute")
        if leader is not None and leader.sources != attribute.sources:
            raise RulesError(f"{path}: {name} follows {leader.name} but has other sources")
    for registry in registries.values():
        if registry not in sources:
            raise RulesError(f"{path}: registry {registry!r} is not a declared source")
    if data["subjects_from"] not in known:
        raise RulesError(f"{path}: subjects_from {data['subjects_from']!r} is not a source")
    return LibraryRules(
        data["library"], data["title_zh"], data["table"], data["key"], data["subjects_from"],
        sources, attributes, registries,
    )  # fmt: skip


# ---- pure transforms -------------------------------------------------------------------


def _fact(source: str, attribute: str) -> str:
    return f"_fact__{source}__{attribute}"


def _chosen(attribute: str) -> str:
    return f"_chosen__{attribute}"


_CHOSEN_TYPE = "struct<value:string,source:string,confirmed_at:date>"


def facts(views: dict[str, DataFrame], rules: LibraryRules) -> DataFrame:
    """One row per key: per (source, attribute) the latest value, as ``value, confirmed_at``.

    The latest row of a source wins for each attribute (newest ``confirmed_at``, then the
    smallest value), nulls included: a source whose latest row has no value gives none.
    Wide, one column per (source, attribute): each view is grouped by key once and the
    groups joined by key, so no (subject, attribute, source) long form is ever shuffled.
    """
    from pyspark.sql import functions as F

    key = rules.key
    wide = None
    for source, view in views.items():
        known = [
            a
            for a in rules.attributes.values()
            if source in (*a.sources, *a.checks) and a.name in view.columns
        ]
        if not known:
            continue
        confirmed = F.col(CONFIRMED).cast("date")
        columns = []
        for attribute in known:
            value = F.col(attribute.name).cast("string")
            # Smallest first: newest confirmation (nulls last), then smallest value (nulls last).
            order = F.struct(confirmed.isNull(), -F.unix_date(confirmed), value.isNull(), value)
            fact = F.struct(value.alias("value"), confirmed.alias(CONFIRMED))
            columns.append(F.min_by(fact, order).alias(_fact(source, attribute.name)))
        part = view.where(F.col(key).isNotNull()).groupBy(key).agg(*columns)
        wide = part if wide is None else wide.join(part, key, "full")
    if wide is None:
        raise RulesError(f"{rules.library}: no view gives any attribute")
    return wide


def choose(fact_rows: DataFrame, rules: LibraryRules) -> DataFrame:
    """The facts, and per attribute the value of the most authoritative source that has one.

    Column ``_chosen__<attribute>``: ``value, source, confirmed_at`` (provenance), null where
    no source has a value.
    """
    from pyspark.sql import functions as F

    def pick(attribute: Attribute, take: Callable[[str, Column], Column]) -> Column:
        options = []
        for source in attribute.sources:
            name = _fact(source, attribute.name)
            if name not in fact_rows.columns:
                continue
            fact = F.col(name)
            option = F.struct(
                fact["value"].alias("value"),
                F.lit(source).alias("source"),
                fact[CONFIRMED].alias(CONFIRMED),
            )
            options.append(F.when(take(source, fact), option))
        value = F.coalesce(*options) if options else F.lit(None).cast(_CHOSEN_TYPE)
        return value.alias(_chosen(attribute.name))

    leaders = [a for a in rules.attributes.values() if not a.follows]
    followers = [a for a in rules.attributes.values() if a.follows]
    chosen = fact_rows.select(
        "*", *(pick(a, lambda source, fact: fact["value"].isNotNull()) for a in leaders)
    )
    if not followers:
        return chosen

    def same_source(attribute: Attribute) -> Callable[[str, Column], Column]:
        leader = F.col(_chosen(attribute.follows or ""))["source"]
        return lambda source, fact: fact.isNotNull() & (leader == F.lit(source))

    return chosen.select("*", *(pick(a, same_source(a)) for a in followers))


def subjects(views: dict[str, DataFrame], rules: LibraryRules) -> DataFrame:
    """The keys the library holds: those of its subjects_from source."""
    return views[rules.subjects_from].select(rules.key).distinct()


def golden(chosen: DataFrame, subject_keys: DataFrame, rules: LibraryRules) -> DataFrame:
    """One typed row per subject: every attribute, and where each value came from."""
    from pyspark.sql import functions as F

    key = rules.key
    columns, entries = [], []
    for attribute in rules.attributes.values():
        pick = F.col(_chosen(attribute.name))
        value = pick["value"]
        if attribute.type == "date":
            value = value.cast("date")
        elif attribute.type == "boolean":
            value = value.cast("boolean")
        columns.append(value.alias(attribute.name))
        entry = F.struct(
            F.lit(attribute.name).alias("attribute"),
            F.struct(pick["source"].alias("source"), pick[CONFIRMED].alias("confirmed_at")),
        )
        entries.append(F.when(pick.isNotNull(), entry))
    present = F.filter(F.array(*entries), lambda item: item.isNotNull())
    # No chosen value at all: no provenance (null), as for a subject without facts.
    provenance = F.when(F.size(present) > 0, F.map_from_entries(present)).alias(PROVENANCE)
    wide = chosen.select(key, *columns, provenance)
    # A subject with no attribute value at all still gets its row.
    return subject_keys.join(wide, key, "left").select(key, *rules.attributes, PROVENANCE)


def conflicts(fact_rows: DataFrame, chosen: DataFrame, rules: LibraryRules) -> DataFrame:
    """Checking sources that disagree with the chosen value (多源核验).

    ``chosen`` (from ``choose``) carries the facts too; ``fact_rows`` is accepted for the
    order of the steps and not read again.
    """
    from pyspark.sql import functions as F

    key = rules.key
    spark = chosen.sparkSession
    found = []
    for attribute in rules.attributes.values():
        pick = F.col(_chosen(attribute.name))
        for source in attribute.checks:
            name = _fact(source, attribute.name)
            if name not in chosen.columns:
                continue
            fact = F.col(name)
            disagrees = (
                fact["value"].isNotNull()
                & pick.isNotNull()
                & (fact["value"] != pick["value"])
                & (pick["source"] != F.lit(source))
            )
            row = F.struct(
                F.lit(attribute.name).alias("attribute"),
                F.lit(source).alias("source"),
                F.lit(rules.department(source)).alias("department"),
                fact["value"].alias("value"),
                pick["source"].alias("chosen_source"),
                pick["value"].alias("chosen_value"),
                F.lit(rules.rule_text(attribute.name)).alias("rule"),
                F.least(fact[CONFIRMED], pick[CONFIRMED]).alias("first_seen"),
                F.greatest(fact[CONFIRMED], pick[CONFIRMED]).alias("last_seen"),
            )
            found.append(F.when(disagrees, row))
    if not found:
        return spark.createDataFrame([], _CONFLICT_SCHEMA)
    disagreeing = F.filter(F.array(*found), lambda item: item.isNotNull())
    return chosen.select(F.col(key).alias("subject"), F.explode(disagreeing).alias("_c")).select(
        "subject", "_c.*"
    )


_CONFLICT_SCHEMA = (
    "subject string, attribute string, source string, department string, value string, "
    "chosen_source string, chosen_value string, rule string, first_seen date, last_seen date"
)


def unmatched(
    views: dict[str, DataFrame], subject_keys: DataFrame, rules: LibraryRules
) -> DataFrame:
    """Source rows about subjects the library does not hold, with the reason."""
    from pyspark.sql import functions as F

    key = rules.key
    parts = []
    for source, view in views.items():
        if source == rules.subjects_from:
            continue
        parts.append(
            view.join(subject_keys, key, "left_anti").select(
                F.col(key).alias("subject"),
                F.lit(source).alias("source"),
                F.lit(rules.department(source)).alias("department"),
                F.lit(
                    f"not in the authoritative source {rules.subjects_from} / "
                    f"权威来源（{rules.subjects_from}）中无此主体"
                ).alias("reason"),
                F.col(CONFIRMED).cast("date").alias(CONFIRMED),
            )
        )
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out


@dataclass(frozen=True)
class Account:
    """Where one view's rows went: into the library (``held``) or its exclusion list."""

    rows: int
    held: int
    listed: int

    @property
    def balanced(self) -> bool:
        return self.rows == self.held + self.listed


def account(
    views: dict[str, DataFrame],
    subject_keys: DataFrame,
    unmatched_rows: DataFrame,
    rules: LibraryRules,
) -> dict[str, Account]:
    """Each view's rows, those whose subject the library holds, and those listed unmatched.

    Two Spark jobs for every view together: the views' keys tagged with their name and
    joined once to the held keys, and the exclusion list counted by source.
    """
    from pyspark.sql import functions as F

    key = rules.key
    tagged = None
    for name, view in views.items():
        part = view.select(key, F.lit(name).alias("_view"))
        tagged = part if tagged is None else tagged.unionByName(part)
    if tagged is None:
        return {}
    held_keys = subject_keys.select(key).distinct().withColumn("_held", F.lit(1))
    counted = (
        tagged.join(held_keys, key, "left")
        .groupBy("_view")
        .agg(F.count(F.lit(1)).alias("rows"), F.count("_held").alias("held"))
        .collect()
    )
    counts = {r["_view"]: (r["rows"], r["held"]) for r in counted}
    listed = {r["source"]: r["count"] for r in unmatched_rows.groupBy("source").count().collect()}
    return {name: Account(*counts.get(name, (0, 0)), listed.get(name, 0)) for name in views}


def worklist(conflict_rows: DataFrame, rules: LibraryRules) -> DataFrame:
    """The correction worklist (数据纠错): each department's rows that disagree, with the fix."""
    from pyspark.sql import functions as F

    return conflict_rows.select(
        "department",
        "subject",
        "attribute",
        F.col("value").alias("your_value"),
        F.col("chosen_value").alias("authoritative_value"),
        F.col("chosen_source").alias("authoritative_source"),
        F.concat(
            F.lit("请核实并更正 "),
            F.col("attribute"),
            F.lit("：权威来源为 "),
            F.col("chosen_source"),
            F.lit(" / verify and correct "),
            F.col("attribute"),
            F.lit(" against "),
            F.col("chosen_source"),
        ).alias("action"),  # fmt: skip
        "first_seen",
        "last_seen",
    )


def version_hash(frame: DataFrame, rules: LibraryRules, derived: Sequence[str] = ()) -> DataFrame:
    """Adds the hash of a row's attribute values and its validity start (newest fact).

    ``derived``: columns computed from other libraries that also make a new version.
    """
    from pyspark.sql import functions as F

    dates = F.transform(F.map_values(F.col(PROVENANCE)), lambda item: item["confirmed_at"])
    return frame.select(
        "*",
        F.sha2(F.to_json(F.struct(*rules.attributes, *derived)), 256).alias(VERSION_HASH),
        F.array_max(dates).alias(VALID_FROM),
    )


# ---- writes ----------------------------------------------------------------------------


def _target(spark: SparkSession, settings: Settings, name: str):  # type: ignore[no-untyped-def]
    from delta.tables import DeltaTable

    from datong.storage import spark_location

    return DeltaTable.forPath(spark, spark_location(settings, name))


def merge_subjects(
    spark: SparkSession,
    settings: Settings,
    name: str,
    key: str,
    affected: DataFrame,
    rows: DataFrame,
    few: bool = False,
) -> None:
    """Replace the rows of the affected subjects in ``name``, one row per subject.

    ``few``: the affected subjects are few enough to broadcast (``tables.merge_source``).
    """
    from pyspark.sql import functions as F

    if not tables.exists(spark, settings, name):
        tables.append(rows, settings, name)
        return
    marked = rows.withColumn("_present", F.lit(True))
    staged = affected.select(key).distinct().join(marked, key, "left")
    with tables.merge_source(spark, staged, few) as source:
        (
            _target(spark, settings, name)
            .alias("t")
            .merge(source.alias("s"), f"t.`{key}` = s.`{key}`")
            .whenMatchedDelete(condition="s._present IS NULL")
            .whenMatchedUpdate(set={c: f"s.`{c}`" for c in rows.columns})
            .whenNotMatchedInsert(
                condition="s._present IS NOT NULL", values={c: f"s.`{c}`" for c in rows.columns}
            )
            .execute()
        )


def replace_for_subjects(
    spark: SparkSession,
    settings: Settings,
    name: str,
    key: str,
    affected: DataFrame,
    rows: DataFrame,
    few: bool = False,
) -> None:
    """Delete every row of the affected subjects in ``name`` and insert ``rows``, one commit.

    The MERGE's source is each affected key once, keyed, to delete the subject's rows, and
    the new rows unkeyed (a subject has many rows), which match nothing and are inserted.
    ``few`` as in ``merge_subjects``.
    """
    from pyspark.sql import functions as F

    if not tables.exists(spark, settings, name):
        tables.append(rows, settings, name)
        return
    # A null key would pass the insert condition below as an empty row.
    markers = affected.select(F.col(key).alias(MERGE_KEY)).where(F.col(MERGE_KEY).isNotNull())
    markers = markers.distinct()
    staged = rows.withColumn(MERGE_KEY, F.lit(None).cast("string")).unionByName(
        markers, allowMissingColumns=True
    )
    with tables.merge_source(spark, staged, few) as source:
        (
            _target(spark, settings, name)
            .alias("t")
            .merge(source.alias("s"), f"t.`{key}` = s.{MERGE_KEY}")
            .whenMatchedDelete()
            .whenNotMatchedInsert(
                condition=f"s.{MERGE_KEY} IS NULL", values={c: f"s.`{c}`" for c in rows.columns}
            )
            .execute()
        )


def merge_history(
    spark: SparkSession,
    settings: Settings,
    name: str,
    key: str,
    current: DataFrame,
    keys: DataFrame | None = None,
    recorded_on: dt.date | None = None,
    gone: DataFrame | None = None,
) -> None:
    """Type-2 history: a changed subject's open version closes where the new one starts.

    A new version starts on the date its facts give (``valid_from``) when that is after the
    open version's start. When it is not (facts that date the change no later than what is
    recorded already), the change is dated ``recorded_on``, the day the platform learned it
    (registration time stands in for the unknown validity time), or, on the day the open
    version itself started, replaces that version. So no period is empty and none overlap.
    ``keys``, the keys of the subjects rebuilt (broadcast if few), keeps the open versions
    read to those subjects'; the MERGE's source is then broadcast too
    (``tables.merge_source``). ``gone``: keys of subjects rebuilt that are no longer in the
    library (their last source row retired, or their ID corrected): their open version
    closes on ``recorded_on`` (today without it), and one that opened that same day is
    removed, as it never held for a day.
    """
    from pyspark.sql import functions as F

    versions = current.withColumn(VALID_TO, F.lit(None).cast("date"))
    if not tables.exists(spark, settings, name):
        tables.append(versions, settings, name)
        return
    open_versions = tables.read(spark, settings, name).where(F.col(VALID_TO).isNull())
    if keys is not None:
        # Only the current subjects' open versions can join them below.
        open_versions = open_versions.join(keys, key, "left_semi")
    opened = open_versions.select(
        key, F.col(VERSION_HASH).alias("_open_hash"), F.col(VALID_FROM).alias("_open_from")
    )
    recorded = F.col("_open_from") if recorded_on is None else F.lit(recorded_on).cast("date")
    starts = F.when(
        F.col("_open_hash").isNull() | (F.col(VALID_FROM) > F.col("_open_from")), F.col(VALID_FROM)
    ).otherwise(F.greatest(recorded, F.col("_open_from")))
    new = (
        versions.join(opened, key, "left")
        .where(F.col("_open_hash").isNull() | (F.col("_open_hash") != F.col(VERSION_HASH)))
        .withColumn(VALID_FROM, starts)
    )
    # The open version started the day the new one does: the new one takes its place.
    in_place = F.coalesce(F.col(VALID_FROM) == F.col("_open_from"), F.lit(False))
    # A new version is inserted, unkeyed. The open version it replaces comes keyed, whole,
    # with the date it closes: the MERGE sets every column from the source, so it reads
    # only the key and validity of the target's rows, not all their columns (at 10M
    # persons, 2.4 GB shuffled for a 1 % change when it read them).
    closes = new.where(F.col("_open_hash").isNotNull() & ~in_place).select(
        key, F.col(VALID_FROM).alias(CLOSES_AT)
    )
    closing = (
        open_versions.join(closes, key)
        .withColumn(MERGE_KEY, F.col(key))
        .select(*versions.columns, CLOSES_AT, MERGE_KEY)
    )
    replacing = (
        new.where(in_place)
        .withColumn(CLOSES_AT, F.lit(None).cast("date"))
        .withColumn(MERGE_KEY, F.col(key))
        .select(*versions.columns, CLOSES_AT, MERGE_KEY)
    )
    inserted = (
        new.where(~in_place)
        .withColumn(CLOSES_AT, F.lit(None).cast("date"))
        .withColumn(MERGE_KEY, F.lit(None).cast("string"))
        .select(*versions.columns, CLOSES_AT, MERGE_KEY)
    )
    staged = inserted.unionByName(closing).unionByName(replacing)
    if gone is not None:
        ends = F.current_date() if recorded_on is None else F.lit(recorded_on).cast("date")
        ended = (
            open_versions.join(gone, key, "left_semi")
            .withColumn(CLOSES_AT, ends)
            .withColumn(MERGE_KEY, F.col(key))
            .select(*versions.columns, CLOSES_AT, MERGE_KEY)
        )
        staged = staged.unionByName(ended)
    closed = {c: f"s.`{c}`" for c in versions.columns} | {VALID_TO: f"s.{CLOSES_AT}"}
    with tables.merge_source(spark, staged, keys is not None) as source:
        (
            _target(spark, settings, name)
            .alias("t")
            .merge(source.alias("s"), f"t.`{key}` = s.{MERGE_KEY} AND t.{VALID_TO} IS NULL")
            # Only a subject gone on the day its open version started closes it so.
            .whenMatchedDelete(condition=f"s.{CLOSES_AT} <= t.{VALID_FROM}")
            .whenMatchedUpdate(set=closed)
            .whenNotMatchedInsert(
                condition=f"s.{MERGE_KEY} IS NULL",
                values={c: f"s.`{c}`" for c in versions.columns},
            )
            .execute()
        )

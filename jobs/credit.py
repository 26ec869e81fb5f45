"""Social credit library (信用基础库): 双公示 records, red and black lists, profiles and grades.

Pure transforms turn silver into the library's tables; ``build`` does the I/O:

- ``records``: licensing and penalty decisions for the five subject kinds, one schema, each
  linked to the population or legal-person library by its subject code (``linked``);
- ``memberships``: red- and black-list entries with their validity periods;
- ``unlinked``: records whose subject is in neither library, with the reason;
- ``profiles``: per subject, the measures and grade that ``schemas/libraries/credit.yaml``
  declares, and ``explanation``: the records of the measures the grading rule read.

``credit.penalty_public`` is a Trino view: penalties whose publicity period has not ended, the
ID of a natural person masked. It reads ``current_date``, so a penalty leaves the public view
on the day its period ends, without a rebuild.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import yaml

from datong.settings import REPO_ROOT

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from datong.settings import Settings

LIBRARY = "credit"
RULES_FILE = REPO_ROOT / "schemas" / "libraries" / "credit.yaml"
NATURAL_PERSON = "natural_person"
SUBJECT_KINDS = (NATURAL_PERSON, "enterprise", "public_institution", "government_body",
                 "social_organization")  # fmt: skip
TABLES = ["credit.record", "credit.list_membership", "credit.unlinked", "credit.profile",
          "credit.profile_history"]  # fmt: skip
SOURCES = ["bronze.administrative_license", "bronze.administrative_penalty",
           "bronze.credit_red_list", "bronze.credit_black_list"]  # fmt: skip
UPSTREAM = ["population", "legal_person"]
PUBLIC_VIEW = "credit.penalty_public"


@dataclass(frozen=True)
class Measure:
    name: str
    table: str  # "record" or "membership"
    where: str
    title_zh: str


@dataclass(frozen=True)
class GradeRule:
    rule: str
    grade: str
    when: str | None
    title_zh: str

    def measures(self, known: list[str]) -> list[str]:
        """The measures this rule's condition reads."""
        if not self.when:
            return []
        words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", self.when))
        return [m for m in known if m in words]


@dataclass(frozen=True)
class CreditRules:
    heavy_penalty_types: tuple[str, ...]
    measures: dict[str, Measure]
    grades: tuple[GradeRule, ...]
    default: GradeRule


@cache
def load_rules() -> CreditRules:
    data = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    measures = {
        name: Measure(name, item["from"], item["where"], item.get("title_zh", name))
        for name, item in data["measures"].items()
    }
    for name, measure in measures.items():
        if measure.table not in ("record", "membership"):
            raise ValueError(f"{RULES_FILE}: measure {name} reads unknown table {measure.table}")
    grades = tuple(
        GradeRule(g["rule"], g["grade"], g["when"], g["title_zh"]) for g in data["grades"]
    )
    for grade in grades:
        if not grade.measures(list(measures)):
            raise ValueError(f"{RULES_FILE}: rule {grade.rule} reads no declared measure")
    default = data["default"]
    return CreditRules(
        tuple(data["heavy_penalty_types"]), measures, grades,
        GradeRule(default["rule"], default["grade"], None, default["title_zh"]),
    )  # fmt: skip


# ---- pure transforms -------------------------------------------------------------------


def records(license_rows: DataFrame, penalty_rows: DataFrame, rules: CreditRules) -> DataFrame:
    """Licensing and penalty decisions in one schema (record_id = authority code + number)."""
    from pyspark.sql import functions as F

    def common(frame: DataFrame, kind: str) -> list[Any]:
        return [
            F.concat_ws("/", "authority_code", "decision_no").alias("record_id"),
            F.lit(kind).alias("record_kind"), "decision_no", "subject_kind", "subject_id",
            "subject_name", "decision_date", "authority_name", "authority_code",
        ]  # fmt: skip

    licences = license_rows.select(
        *common(license_rows, "license"),
        F.col("license_name").alias("matter"),
        F.lit(None).cast("string").alias("penalty_type"),
        F.lit(None).cast("decimal(18,2)").alias("penalty_amount"),
        F.lit(False).alias("heavy"),
        "valid_from",
        "valid_to",
        F.lit(None).cast("date").alias("publicity_end_date"),
    )
    penalties = penalty_rows.select(
        *common(penalty_rows, "penalty"),
        F.col("violation").alias("matter"),
        "penalty_type",
        F.col("penalty_amount").cast("decimal(18,2)").alias("penalty_amount"),
        F.col("penalty_type").isin(list(rules.heavy_penalty_types)).alias("heavy"),
        F.col("decision_date").alias("valid_from"),
        F.col("publicity_end_date").alias("valid_to"),
        "publicity_end_date",
    )
    return licences.unionByName(penalties)


def memberships(red: DataFrame, black: DataFrame) -> DataFrame:
    """List entries: in force from inclusion until removal or the list's end date."""
    from pyspark.sql import functions as F

    def entries(frame: DataFrame, kind: str) -> DataFrame:
        return frame.select(
            F.concat_ws("/", "list_name", "subject_id", F.col("included_date").cast("string"))
            .alias("record_id"),
            F.lit(kind).alias("list_kind"), "list_name", "subject_kind", "subject_id",
            "subject_name", "reason", "authority_name",
            F.col("included_date").alias("valid_from"),
            F.least("valid_to", "removed_date").alias("valid_to"), "removed_date",
        )  # fmt: skip

    return entries(red, "red").unionByName(entries(black, "black"))


def link(frame: DataFrame, persons: DataFrame, entities: DataFrame) -> DataFrame:
    """Adds ``linked``: the subject is in the population (natural persons) or legal-person
    library (the other kinds)."""
    from pyspark.sql import functions as F

    people = persons.select(F.col("person_id").alias("_pid"))
    orgs = entities.select(F.col("credit_code").alias("_cc"))
    natural = F.col("subject_kind") == NATURAL_PERSON
    joined = frame.join(
        F.broadcast(people), natural & (F.col("subject_id") == F.col("_pid")), "left"
    ).join(F.broadcast(orgs), ~natural & (F.col("subject_id") == F.col("_cc")), "left")
    linked = F.col("_pid").isNotNull() | F.col("_cc").isNotNull()
    return joined.select(*frame.columns, linked.alias("linked"))


def unlinked(record_rows: DataFrame, membership_rows: DataFrame) -> DataFrame:
    """Records and list entries whose subject is in neither library, with the reason."""
    from pyspark.sql import functions as F

    library = F.when(F.col("subject_kind") == NATURAL_PERSON, F.lit("population.person")).otherwise(
        F.lit("legal_person.entity")
    )
    reason = F.concat(
        F.lit("主体代码不在"), library, F.lit("中 / subject code not found in "), library
    )

    def part(frame: DataFrame, source: str, kind: Any) -> DataFrame:
        return frame.where(~F.col("linked")).select(
            F.col("subject_id").alias("subject"), "subject_kind", "subject_name",
            F.lit(source).alias("source"), kind.alias("record_kind"), "record_id",
            reason.alias("reason"),
        )  # fmt: skip

    return part(record_rows, "credit.record", F.col("record_kind")).unionByName(
        part(membership_rows, "credit.list_membership", F.col("list_kind"))
    )


def _evidence(frame: DataFrame, measure: Measure, as_of: dt.date) -> DataFrame:
    from pyspark.sql import functions as F

    condition = F.expr(measure.where.replace("as_of", f"DATE'{as_of.isoformat()}'"))
    return frame.where(condition).select(
        "subject_id",
        F.lit(measure.name).alias("measure"),
        "record_id",
        F.concat_ws(" ", *[F.col(c).cast("string") for c in _describe(frame)]).alias("description"),
    )


def _describe(frame: DataFrame) -> list[str]:
    if "list_kind" in frame.columns:
        return ["list_name", "valid_from", "valid_to"]
    return ["record_kind", "decision_date", "matter", "penalty_type"]


def profiles(
    record_rows: DataFrame, membership_rows: DataFrame, rules: CreditRules, as_of: dt.date
) -> DataFrame:
    """One profile per linked subject: measures, grade, the rule and its explanation."""
    from pyspark.sql import functions as F

    linked_records = record_rows.where("linked")
    linked_lists = membership_rows.where("linked")
    tables = {"record": linked_records, "membership": linked_lists}
    evidence = None
    for measure in rules.measures.values():
        part = _evidence(tables[measure.table], measure, as_of)
        evidence = part if evidence is None else evidence.unionByName(part)
    assert evidence is not None
    subjects = (
        linked_records.select("subject_id", "subject_kind", "subject_name")
        .unionByName(linked_lists.select("subject_id", "subject_kind", "subject_name"))
        .groupBy("subject_id")
        .agg(F.first("subject_kind").alias("subject_kind"),
             F.first("subject_name").alias("subject_name"))
    )  # fmt: skip
    counts = evidence.groupBy("subject_id").pivot("measure", list(rules.measures)).count()
    measured = subjects.join(counts, "subject_id", "left").select(
        "subject_id", "subject_kind", "subject_name",
        *[F.coalesce(F.col(m), F.lit(0)).cast("int").alias(m) for m in rules.measures],
    )  # fmt: skip
    names = list(rules.measures)
    rule_id, grade = F.lit(rules.default.rule), F.lit(rules.default.grade)
    for rule in reversed(rules.grades):
        holds = F.expr(str(rule.when))
        rule_id = F.when(holds, F.lit(rule.rule)).otherwise(rule_id)
        grade = F.when(holds, F.lit(rule.grade)).otherwise(grade)
    graded = measured.select("*", rule_id.alias("grade_rule"), grade.alias("grade"))
    # The records behind the grade: those of the measures the chosen rule reads.
    reads = [(r.rule, m) for r in rules.grades for m in r.measures(names)]
    spark = record_rows.sparkSession
    rule_measures = spark.createDataFrame(reads, "grade_rule string, measure string")
    explained = (
        graded.select("subject_id", "grade_rule")
        .join(rule_measures, "grade_rule")
        .join(evidence, ["subject_id", "measure"])
        .groupBy("subject_id")
        .agg(
            F.sort_array(F.collect_list(F.struct("measure", "record_id", "description"))).alias(
                "explanation"
            )
        )
    )
    titles = spark.createDataFrame(
        [(r.rule, r.title_zh) for r in (*rules.grades, rules.default)],
        "grade_rule string, grade_reason_zh string",
    )
    empty = F.array().cast("array<struct<measure:string,record_id:string,description:string>>")
    return (
        graded.join(explained, "subject_id", "left")
        .join(F.broadcast(titles), "grade_rule", "left")
        .select(
            "subject_id",
            "subject_kind",
            "subject_name",
            *names,
            "grade",
            "grade_rule",
            "grade_reason_zh",
            F.coalesce("explanation", empty).alias("explanation"),
            F.lit(as_of).alias("graded_on"),
        )  # fmt: skip
    )


def create_views(settings: Settings) -> None:
    """Create ``credit.penalty_public`` in Trino."""
    from datong.query import run

    run(settings, public_view_sql())


def public_view_sql() -> str:
    """Penalties still inside their publicity period; natural persons' IDs masked."""
    masked = (
        "CASE WHEN subject_kind = 'natural_person' "
        "THEN substr(subject_id, 1, 6) || '********' || substr(subject_id, 15) "
        "ELSE subject_id END"
    )
    return (
        f"CREATE OR REPLACE VIEW lake.{PUBLIC_VIEW} AS "
        "SELECT record_id, decision_no, subject_kind, subject_name, "
        f"{masked} AS subject_id, matter AS violation, penalty_type, penalty_amount, "
        "decision_date, publicity_end_date, authority_name, authority_code "
        "FROM lake.credit.record "
        "WHERE record_kind = 'penalty' AND publicity_end_date >= current_date"
    )


# ---- I/O -------------------------------------------------------------------------------


def build(spark: Any, settings: Settings, as_of: dt.date) -> dict[str, int]:
    """Rebuild the credit tables from silver and the libraries; MERGE what changed."""
    from jobs import golden
    from jobs.derived import gold_or_empty, silver_or_empty, sync_table

    rules = load_rules()
    persons = gold_or_empty(spark, settings, "population.person", "person_id string")
    entities = gold_or_empty(spark, settings, "legal_person.entity", "credit_code string")
    record_rows = link(
        records(
            silver_or_empty(spark, settings, "bronze.administrative_license"),
            silver_or_empty(spark, settings, "bronze.administrative_penalty"),
            rules,
        ),
        persons,
        entities,
    ).localCheckpoint()
    membership_rows = link(
        memberships(
            silver_or_empty(spark, settings, "bronze.credit_red_list"),
            silver_or_empty(spark, settings, "bronze.credit_black_list"),
        ),
        persons,
        entities,
    ).localCheckpoint()
    profile_rows = profiles(record_rows, membership_rows, rules, as_of).localCheckpoint()
    unlinked_rows = unlinked(record_rows, membership_rows)
    counts = {
        "credit.record": sync_table(spark, settings, "credit.record", ["record_id"], record_rows),
        "credit.list_membership": sync_table(
            spark, settings, "credit.list_membership", ["record_id"], membership_rows
        ),
        "credit.unlinked": sync_table(
            spark, settings, "credit.unlinked", ["source", "record_id"], unlinked_rows
        ),
        "credit.profile": sync_table(
            spark,
            settings,
            "credit.profile",
            ["subject_id"],
            profile_rows,
            ignore=["graded_on", "subject_name"],
        ),  # fmt: skip
    }
    history = golden_history(profile_rows, as_of)
    golden.merge_history(spark, settings, "credit.profile_history", "subject_id", history)
    return counts


def golden_history(profile_rows: DataFrame, as_of: dt.date) -> DataFrame:
    """Profile versions for type-2 history: a new version when the grade or measures change."""
    from pyspark.sql import functions as F

    from jobs.golden import VALID_FROM, VERSION_HASH

    rules = load_rules()
    tracked = ["grade", "grade_rule", *rules.measures]
    return profile_rows.select(
        "subject_id", "subject_kind", *tracked,
        F.sha2(F.to_json(F.struct(*tracked)), 256).alias(VERSION_HASH),
        F.lit(as_of).alias(VALID_FROM),
    )  # fmt: skip

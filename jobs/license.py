"""E-license library (电子证照库): licenses linked to their holders, with derived status.

Pure transforms over silver and the golden libraries; ``build`` does the I/O:

- ``licenses``: every license normalised, its holder linked to the population or legal-person
  library (``holder_linked``), its status derived by ``schemas/libraries/license.yaml`` as of
  the build date, with the reason and the date it stopped being valid (``ended_on``);
- ``conflicts``: licenses the issuer shows as 有效 that the library finds expired, or whose
  holder has died or been deregistered;
- ``unlinked``: licenses whose holder is in neither library;
- ``valid_for_holder``: validity intervals per holder and license, kept from the license's
  history, so "all valid licenses of this holder on date D" is one range query.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import yaml

from datong.settings import REPO_ROOT

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from datong.settings import Settings

LIBRARY = "license"
RULES_FILE = REPO_ROOT / "schemas" / "libraries" / "license.yaml"
TABLES = ["license.license", "license.license_history", "license.conflict",
          "license.unlinked", "license.valid_for_holder"]  # fmt: skip
SOURCES = ["bronze.e_license"]
UPSTREAM = ["population", "legal_person"]
NATURAL_PERSON = "natural_person"
VALID = "valid"
TRACKED = ["license_type", "holder_id", "issue_date", "expiry_date", "delivered_status",
           "status", "ended_on"]  # fmt: skip


@dataclass(frozen=True)
class StatusRule:
    status: str
    when: str | None
    title_zh: str


@dataclass(frozen=True)
class LicenseRules:
    ends_on_death: tuple[str, ...]
    ends_on_deregistration: tuple[str, ...]
    statuses: tuple[StatusRule, ...]
    default: StatusRule
    conflicts: dict[str, str]


@cache
def load_rules() -> LicenseRules:
    data = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    statuses = tuple(StatusRule(s["status"], s["when"], s["title_zh"]) for s in data["statuses"])
    known = {s.status for s in statuses}
    for status in data["conflicts"]:
        if status not in known:
            raise ValueError(f"{RULES_FILE}: conflict on unknown status {status!r}")
    default = data["default"]
    return LicenseRules(
        tuple(data["ends_on_holder_death"]), tuple(data["ends_on_holder_deregistration"]),
        statuses, StatusRule(default["status"], None, default["title_zh"]), data["conflicts"],
    )  # fmt: skip


# ---- pure transforms -------------------------------------------------------------------


def holders(persons: DataFrame, entities: DataFrame) -> DataFrame:
    """Every holder the libraries know: key, kind family, death or deregistration."""
    from pyspark.sql import functions as F

    people = persons.select(
        F.col("person_id").alias("holder_id"), F.lit(True).alias("_natural"),
        "death_date", F.lit(None).cast("string").alias("holder_status"),
        F.lit(None).cast("date").alias("deregistered"),
    )  # fmt: skip
    orgs = entities.select(
        F.col("credit_code").alias("holder_id"), F.lit(False).alias("_natural"),
        F.lit(None).cast("date").alias("death_date"), F.col("status").alias("holder_status"),
        "deregistered",
    )  # fmt: skip
    return people.unionByName(orgs)


def licenses(e_license: DataFrame, holder_rows: DataFrame, rules: LicenseRules,
             as_of: dt.date) -> DataFrame:  # fmt: skip
    """Licenses with holder linkage and the derived status, its reason and end date."""
    from pyspark.sql import functions as F

    natural = F.col("holder_kind") == NATURAL_PERSON
    joined = e_license.alias("l").join(
        F.broadcast(holder_rows).alias("h"),
        (F.col("l.holder_id") == F.col("h.holder_id")) & (natural == F.col("h._natural")),
        "left",
    )
    base = joined.select(
        "l.license_no", "l.license_type", "l.license_name", "l.holder_kind", "l.holder_id",
        "l.holder_name", "l.issuer_name", "l.issuer_code", "l.issue_date", "l.expiry_date",
        F.col("l.status").alias("delivered_status"), F.col("l.update_time"),
        F.col("h._natural").isNotNull().alias("holder_linked"), "h.death_date",
        "h.holder_status", "h.deregistered",
        F.col("l.license_type").isin(list(rules.ends_on_death)).alias("ends_on_death"),
        F.col("l.license_type").isin(list(rules.ends_on_deregistration))
        .alias("ends_on_deregistration"),
    )  # fmt: skip
    day = f"DATE'{as_of.isoformat()}'"
    status, reason = F.lit(rules.default.status), F.lit(rules.default.title_zh)
    for rule in reversed(rules.statuses):
        holds = F.coalesce(F.expr(str(rule.when).replace("as_of", day)), F.lit(False))
        status = F.when(holds, F.lit(rule.status)).otherwise(status)
        reason = F.when(holds, F.lit(rule.title_zh)).otherwise(reason)
    changed_on = F.to_date("update_time")
    ended = (
        F.when(F.col("status").isin("revoked", "cancelled"), changed_on)
        .when(F.col("status") == "holder_deceased", F.col("death_date"))
        .when(F.col("status") == "holder_deregistered",
              F.coalesce("deregistered", changed_on))
        .when(F.col("status") == "expired", F.coalesce("expiry_date", changed_on))
    )  # fmt: skip
    with_status = base.select("*", status.alias("status"), reason.alias("status_reason_zh"))
    return with_status.select(
        "license_no", "license_type", "license_name", "holder_kind", "holder_id",
        "holder_name", "holder_linked", "issuer_name", "issuer_code", "issue_date",
        "expiry_date", "delivered_status", "status", "status_reason_zh",
        ended.alias("ended_on"), "update_time", "death_date", "holder_status",
        F.lit(as_of).alias("status_as_of"),
    )  # fmt: skip


def conflicts(license_rows: DataFrame, rules: LicenseRules) -> DataFrame:
    """Licenses the issuer shows as 有效 whose derived status is not valid."""
    from pyspark.sql import functions as F

    kinds = F.create_map(*[F.lit(x) for pair in rules.conflicts.items() for x in pair])
    holder_value = (
        F.when(F.col("status") == "holder_deceased",
               F.concat(F.lit("死亡 "), F.col("death_date").cast("string")))
        .when(F.col("status") == "holder_deregistered", F.col("holder_status"))
        .when(F.col("status") == "expired",
              F.concat(F.lit("expired "), F.col("expiry_date").cast("string")))
    )  # fmt: skip
    return license_rows.where(
        (F.col("delivered_status") == "有效") & F.col("status").isin(list(rules.conflicts))
    ).select(
        F.col("holder_id").alias("subject"), "license_no", "license_type", "holder_kind",
        kinds[F.col("status")].alias("kind"), F.col("delivered_status").alias("issuer_value"),
        holder_value.alias("library_value"), "status", "issuer_name",
        F.lit("data_bureau").alias("department"), "ended_on", "status_as_of",
    )  # fmt: skip


def unlinked(license_rows: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    library = F.when(F.col("holder_kind") == NATURAL_PERSON, F.lit("population.person")).otherwise(
        F.lit("legal_person.entity")
    )
    return license_rows.where(~F.col("holder_linked")).select(
        F.col("holder_id").alias("subject"), "holder_kind", "holder_name", "license_no",
        "license_type",
        F.concat(F.lit("持证主体不在"), library, F.lit("中 / holder not found in "), library)
        .alias("reason"),
    )  # fmt: skip


def versions(license_rows: DataFrame, as_of: dt.date) -> DataFrame:
    """License rows as type-2 versions (a new version when the status or dates change)."""
    from pyspark.sql import functions as F

    from jobs.golden import VALID_FROM, VERSION_HASH

    return license_rows.select(
        "license_no", "license_name", "holder_kind", "holder_name", *TRACKED,
        F.sha2(F.to_json(F.struct(*TRACKED)), 256).alias(VERSION_HASH),
        F.lit(as_of).alias(VALID_FROM),
    )  # fmt: skip


def valid_for_holder(history: DataFrame) -> DataFrame:
    """Validity intervals [valid_from, valid_until) per holder and license.

    Each issue of a license (its issue date; a renewal is a new one) is valid from that date
    until the earliest of its expiry and the end any version of it recorded.
    """
    from pyspark.sql import functions as F

    issued = (
        history.where(F.col("holder_id").isNotNull())
        .groupBy(
            "holder_id", "holder_kind", "license_no", "license_type", "license_name", "issue_date"
        )
        .agg(
            F.max("expiry_date").alias("expiry_date"),
            F.min("ended_on").alias("ended_on"),
        )
    )
    return issued.select(
        "holder_id", "holder_kind", "license_no", "license_type", "license_name",
        F.col("issue_date").alias("valid_from"),
        F.least("expiry_date", "ended_on").alias("valid_until"),
    )  # fmt: skip


def valid_on_sql(holder_id: str, day: dt.date) -> str:
    """The Trino query "all valid licenses of this holder on date D"."""
    holder = holder_id.replace("'", "''")
    return (
        "SELECT license_no, license_type, license_name, valid_from, valid_until "
        f"FROM lake.license.valid_for_holder WHERE holder_id = '{holder}' "
        f"AND valid_from <= DATE '{day.isoformat()}' "
        f"AND (valid_until IS NULL OR valid_until > DATE '{day.isoformat()}') "
        "ORDER BY license_no"
    )


# ---- I/O -------------------------------------------------------------------------------


def build(spark: Any, settings: Settings, as_of: dt.date) -> dict[str, int]:
    from datong import tables
    from jobs import golden
    from jobs.derived import gold_or_empty, silver_or_empty, sync_table

    rules = load_rules()
    persons = gold_or_empty(
        spark, settings, "population.person", "person_id string, death_date date"
    )
    entities = gold_or_empty(
        spark, settings, "legal_person.entity",
        "credit_code string, status string, deregistered date",
    )  # fmt: skip
    rows = licenses(
        silver_or_empty(spark, settings, "bronze.e_license"), holders(persons, entities),
        rules, as_of,
    ).localCheckpoint()  # fmt: skip
    counts = {
        "license.license": sync_table(
            spark, settings, "license.license", ["license_no"], rows, ignore=["status_as_of"]
        ),
        "license.conflict": sync_table(
            spark,
            settings,
            "license.conflict",
            ["license_no"],
            conflicts(rows, rules),
            ignore=["status_as_of"],
        ),  # fmt: skip
        "license.unlinked": sync_table(
            spark, settings, "license.unlinked", ["license_no"], unlinked(rows)
        ),
    }
    golden.merge_history(
        spark, settings, "license.license_history", "license_no", versions(rows, as_of)
    )
    history = tables.read(spark, settings, "license.license_history")
    intervals = valid_for_holder(history).repartitionByRange(4, "holder_id")
    counts["license.valid_for_holder"] = sync_table(
        spark, settings, "license.valid_for_holder", ["license_no", "valid_from"],
        intervals.sortWithinPartitions("holder_id"),
    )  # fmt: skip
    return counts

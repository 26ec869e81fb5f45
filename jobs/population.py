"""Population base library (人口基础库): the views its rules choose from.

Each view is a pure function of one silver table: the subject's 18-digit ID, the attributes
that source knows (named as in ``schemas/libraries/population.yaml``) and ``confirmed_at``.
Precedence, checks and every write live in ``jobs.golden`` and ``jobs.build``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jobs.affected import rows_naming

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from jobs.affected import Affected

LIBRARY = "population"
KEY = "person_id"
HEAD, SPOUSE = "02", "10"  # GB/T 4761: 户主, 配偶
MARRIED, DIVORCED = "20", "40"  # GB/T 2261.2
#: Columns of each silver table that name a subject: a change there affects those persons,
#: and a view's ``person_id`` is always one of them (``rows_for`` relies on it).
SUBJECT_COLUMNS = {
    "silver.household_register": ["person_id"],
    "silver.death_registration": ["person_id"],
    "silver.marriage_registration": ["male_id", "female_id"],
    "silver.social_insurance": ["person_id"],
    "silver.student_enrollment": ["person_id"],
    "silver.natural_person_taxpayer": ["person_id"],
}


def household(register: DataFrame) -> DataFrame:
    """公安: identity, household and address; a cancellation for death marks the person dead."""
    from pyspark.sql import functions as F

    dead = F.col("cancellation_reason") == "死亡"
    heads = register.where(F.col("relation_to_head") == HEAD).select(
        "household_id", F.col("person_id").alias("_head")
    )
    spouses = register.where(F.col("relation_to_head") == SPOUSE).select(
        "household_id", F.col("person_id").alias("_spouse")
    )
    # In the register a spouse is the head's spouse: the pair gives each one's spouse.
    with_spouse = register.join(heads, "household_id", "left").join(spouses, "household_id", "left")
    spouse = F.when(F.col("relation_to_head") == HEAD, F.col("_spouse")).when(
        F.col("relation_to_head") == SPOUSE, F.col("_head")
    )
    return with_spouse.select(
        "person_id", "name", "gender", "ethnicity", "birth_date", "household_id",
        "relation_to_head", "address", "division_code", "marital_status",
        F.when(F.col("marital_status") == MARRIED, spouse).alias("spouse_id"),
        F.coalesce(dead, F.lit(False)).alias("deceased"),
        F.when(dead, F.col("cancellation_date")).alias("death_date"),
        F.to_date("update_time").alias("confirmed_at"),
    )  # fmt: skip


def death(registration: DataFrame) -> DataFrame:
    """民政: a registered death."""
    from pyspark.sql import functions as F

    return registration.select(
        "person_id", "name", "gender", F.lit(True).alias("deceased"), "death_date",
        F.col("registration_date").alias("confirmed_at"),
    )  # fmt: skip


def marriage(registration: DataFrame) -> DataFrame:
    """民政: each registration seen from both partners; the latest one counts."""
    from pyspark.sql import functions as F

    status = F.when(F.col("registration_type") == "结婚", F.lit(MARRIED)).when(
        F.col("registration_type") == "离婚", F.lit(DIVORCED)
    )
    married = F.col("registration_type") == "结婚"

    def side(me: str, partner: str) -> DataFrame:
        return registration.select(
            F.col(me).alias("person_id"),
            status.alias("marital_status"),
            F.when(married, F.col(partner)).alias("spouse_id"),
            F.col("registration_date").alias("confirmed_at"),
        )

    return side("male_id", "female_id").unionByName(side("female_id", "male_id"))


def insurance(insured: DataFrame) -> DataFrame:
    """人社: insurance status, and the name 人社 holds."""
    from pyspark.sql import functions as F

    return insured.select(
        "person_id", "name",
        F.concat_ws(":", "insurance_type", "status").alias("insurance_status"),
        F.to_date("update_time").alias("confirmed_at"),
    )  # fmt: skip


def school(enrollment: DataFrame) -> DataFrame:
    """教育: schooling, and the name, gender and birth date on the student record."""
    from pyspark.sql import functions as F

    return enrollment.select(
        "person_id", "name", "gender", "birth_date",
        F.concat_ws(":", "stage", "school_name", "status").alias("schooling"),
        F.col("enrollment_date").alias("confirmed_at"),
    )  # fmt: skip


def tax(taxpayer: DataFrame) -> DataFrame:
    """税务: tax status, and the name and address 税务 holds."""
    from pyspark.sql import functions as F

    return taxpayer.select(
        "person_id", "name", "address", "tax_status",
        F.to_date("update_time").alias("confirmed_at"),
    )  # fmt: skip


VIEWS = {
    "household": ("silver.household_register", household),
    "death": ("silver.death_registration", death),
    "marriage": ("silver.marriage_registration", marriage),
    "insurance": ("silver.social_insurance", insurance),
    "school": ("silver.student_enrollment", school),
    "tax": ("silver.natural_person_taxpayer", tax),
}


def views(silver: dict[str, DataFrame]) -> dict[str, DataFrame]:
    """Every view, from the silver tables by name."""
    return {name: build(silver[table]) for name, (table, build) in VIEWS.items()}


REGISTER = "silver.household_register"


def closure(
    silver: dict[str, DataFrame], changed: dict[str, DataFrame], affected: DataFrame
) -> DataFrame:
    """The affected persons and everyone in a household with one of them, before or after.

    A member's views read the other members' rows: the head's and the spouse's rows give each
    other's spouse (``household``) and a member's relationship is to the head
    (``relationships``). A changed register row (as it was and as it is, in ``changed``) so
    also affects the households it leaves and joins.
    """
    from pyspark.sql import functions as F

    register = silver[REGISTER]
    households = register.join(affected, KEY, "left_semi").select("household_id")
    if REGISTER in changed:
        households = households.unionByName(changed[REGISTER].select("household_id"))
    households = households.where(F.col("household_id").isNotNull()).distinct()
    members = register.join(households, "household_id", "left_semi").select(KEY)
    return affected.unionByName(members).distinct()


def rows_for(silver: dict[str, DataFrame], affected: Affected) -> dict[str, DataFrame]:
    """The silver rows the affected persons' views are built from, by table: those naming one.

    ``affected`` is closed under households (``closure``), so a member's household rows are
    all among them.
    """
    return {t: rows_naming(frame, SUBJECT_COLUMNS[t], affected) for t, frame in silver.items()}


def relationships(person: DataFrame) -> DataFrame:
    """Household membership and spouses, one row per (person, related person, relation)."""
    from pyspark.sql import functions as F

    heads = person.where(F.col("relation_to_head") == HEAD).select(
        "household_id", F.col("person_id").alias("related_id")
    )
    to_head = (
        person.where(F.col("relation_to_head") != HEAD)
        .join(heads, "household_id")
        .select(
            "person_id", "related_id", F.col("relation_to_head").alias("relation"), "household_id"
        )
    )
    spouses = person.where(F.col("spouse_id").isNotNull()).select(
        "person_id", F.col("spouse_id").alias("related_id"), F.lit(SPOUSE).alias("relation"),
        "household_id",
    )  # fmt: skip
    return to_head.unionByName(spouses)


#: Sources whose rows name one person by ``person_id``: a row quarantined for an invalid ID
#: there still describes a person, and is offered to linkage (``jobs.linkage``).
LINKABLE = {
    "bronze.death_registration": "death",
    "bronze.social_insurance": "insurance",
    "bronze.student_enrollment": "school",
    "bronze.natural_person_taxpayer": "tax",
}
INVALID_ID_RULE = "INGEST-007"
#: A row whose person ID is missing (a required value) may still plainly describe a person.
MISSING_ID_RULE = "INGEST-002"


def linkage_candidates(rejected: list[Any], resources: dict[str, Any]) -> Any:
    """Quarantined rows of ``LINKABLE`` sources whose person ID is invalid or missing, as
    Splink candidates.

    The raw text is split as delivered (CSV, JSON Lines, XLSX cells). The birth date comes
    from the row when it has one, else from the ID's birth segment, which a wrong check
    character leaves intact. Returns a pandas frame: record_id, delivered_id, source,
    source_file, row_number, and the linkage fields.
    """
    import pandas as pd

    from jobs.staging import delivered_values

    rows = []
    for item in rejected:
        resource = resources[item["_resource"]]
        failed = {(p["rule_id"], p["field"]) for p in item["problems"]}
        if not failed & {(INVALID_ID_RULE, "person_id"), (MISSING_ID_RULE, "person_id")}:
            continue
        columns = [e.name for e in resource.elements]
        values = delivered_values(item["_raw"], resource.delivery.format, columns)
        if values is None:
            continue  # a row that cannot even be split stays in quarantine only
        delivered = str(values.get("person_id") or "").strip().upper()
        birth = values.get("birth_date") or (
            f"{delivered[6:10]}-{delivered[10:12]}-{delivered[12:14]}"
            if len(delivered) == 18
            else None
        )
        gender = values.get("gender") or (
            ("1" if int(delivered[16]) % 2 else "2") if delivered[16:17].isdigit() else None
        )
        rows.append(
            {
                "record_id": f"{item['_source_file']}#{item['_row_number']}",
                "delivered_id": delivered,
                "source": LINKABLE[item["_resource"]],
                "source_file": item["_source_file"],
                "row_number": int(item["_row_number"]),
                "name": (values.get("name") or "").strip() or None,
                "gender": gender,
                "birth_date": birth,
                "division_code": values.get("division_code") or None,
                "address": (values.get("address") or "").strip() or None,
            }
        )
    return pd.DataFrame(
        rows,
        columns=["record_id", "delivered_id", "source", "source_file", "row_number", "name",
                 "gender", "birth_date", "division_code", "address"],
    )  # fmt: skip


def linked_values(rejected: list[Any], links: Any, resources: dict[str, Any]) -> dict[str, list]:
    """The delivered values of each quarantined row linked to a person, by bronze table.

    A ``linked`` decision (in ``links``: record_id, person_id, decision) says whose row it
    is: the row's values as delivered, its person ID the linked person's, with its lineage
    (source file, batch, row number), so that it can enter silver as that person's row and
    reach gold and the conflicts like any other. Rows decided otherwise stay in quarantine
    only.
    """
    from jobs.staging import delivered_values

    person = {
        record: pid
        for record, pid, decision in zip(
            links["record_id"], links["person_id"], links["decision"], strict=True
        )
        if decision == "linked"
    }
    values: dict[str, list] = {}
    for item in rejected:
        record = f"{item['_source_file']}#{item['_row_number']}"
        if record not in person:
            continue
        resource = resources[item["_resource"]]
        columns = [e.name for e in resource.elements]
        delivered = delivered_values(item["_raw"], resource.delivery.format, columns)
        if delivered is None:
            continue
        row = {**delivered, KEY: person[record], "_source_file": item["_source_file"],
               "_batch_id": item["_batch_id"], "_row_number": int(item["_row_number"])}  # fmt: skip
        values.setdefault(item["_resource"], []).append(row)
    return values

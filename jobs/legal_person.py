"""Legal-person base library (法人基础库): the views its rules choose from.

``registry`` is the union of the three registers, each restricted to the credit codes its
authority issues (the code's first character, as ``schemas/libraries/legal_person.yaml``
declares): a code is answered for by the registry that issued it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.affected import rows_naming

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from jobs.affected import Affected

LIBRARY = "legal_person"
KEY = "credit_code"
OPERATING, CLOSED = "存续", "注销"
#: Columns of each silver table that name a subject; a view's ``credit_code`` is one of them.
SUBJECT_COLUMNS = {
    "silver.enterprise_registration": ["credit_code"],
    "silver.public_institution": ["credit_code"],
    "silver.social_organization": ["credit_code"],
    "silver.enterprise_taxpayer": ["credit_code"],
}


def _status(column: str) -> object:
    from pyspark.sql import functions as F

    # 编办 and 民政 say 正常 where 市场监管 says 存续.
    return F.when(F.col(column) == "正常", F.lit(OPERATING)).otherwise(F.col(column))


def market(registration: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    return registration.select(
        "credit_code", "name", F.substring("credit_code", 1, 1).alias("authority"),
        "entity_type", "legal_representative_id",
        F.substring("industry_code", 1, 1).alias("industry"), "industry_code",
        "division_code", "address", F.col("establish_date").alias("established"), "status",
        F.col("deregistration_date").alias("deregistered"),
        (F.col("status") == CLOSED).alias("closed"),
        F.to_date("update_time").alias("confirmed_at"),
    )  # fmt: skip


def institution(register: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    status = _status("status")
    return register.select(
        "credit_code", "name", F.substring("credit_code", 1, 1).alias("authority"),
        F.lit("public_institution").alias("entity_type"), "legal_representative_id",
        F.lit(None).cast("string").alias("industry"),
        F.lit(None).cast("string").alias("industry_code"), "division_code", "address",
        F.col("establish_date").alias("established"), status.alias("status"),
        F.lit(None).cast("date").alias("deregistered"), (status == CLOSED).alias("closed"),
        F.col("establish_date").alias("confirmed_at"),
    )  # fmt: skip


def social_org(register: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    status = _status("status")
    return register.select(
        "credit_code", "name", F.substring("credit_code", 1, 1).alias("authority"),
        F.col("organization_type").alias("entity_type"), "legal_representative_id",
        F.lit(None).cast("string").alias("industry"),
        F.lit(None).cast("string").alias("industry_code"), "division_code", "address",
        F.col("establish_date").alias("established"), status.alias("status"),
        F.col("deregistration_date").alias("deregistered"), (status == CLOSED).alias("closed"),
        F.coalesce("deregistration_date", "establish_date").alias("confirmed_at"),
    )  # fmt: skip


def tax(taxpayer: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    return taxpayer.select(
        "credit_code", "name", "tax_status", "taxpayer_type",
        (F.col("tax_status") == CLOSED).alias("closed"),
        F.to_date("update_time").alias("confirmed_at"),
    )  # fmt: skip


REGISTERS = {
    "market": ("silver.enterprise_registration", market),
    "institution": ("silver.public_institution", institution),
    "social_org": ("silver.social_organization", social_org),
}


def views(silver: dict[str, DataFrame], registries: dict[str, str]) -> dict[str, DataFrame]:
    """``registry`` (each register restricted to its authority's codes) and ``tax``."""
    from pyspark.sql import functions as F

    registry = None
    for authority, name in sorted(registries.items()):
        table, build = REGISTERS[name]
        part = build(silver[table]).where(F.substring("credit_code", 1, 1) == authority)
        registry = part if registry is None else registry.unionByName(part)
    assert registry is not None, "legal_person.yaml declares no registry"
    return {"registry": registry, "tax": tax(silver["silver.enterprise_taxpayer"])}


def closure(
    silver: dict[str, DataFrame], changed: dict[str, DataFrame], affected: DataFrame
) -> DataFrame:
    """The affected legal persons: an entity's views read only rows naming it."""
    return affected


def rows_for(silver: dict[str, DataFrame], affected: Affected) -> dict[str, DataFrame]:
    """The silver rows the affected legal persons' views are built from: those naming them."""
    return {t: rows_naming(frame, SUBJECT_COLUMNS[t], affected) for t, frame in silver.items()}

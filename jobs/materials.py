"""Shared materials (共享材料): what procedures most often ask applicants to bring, as views.

Each material is a Trino view over the base libraries, so a procedure fetches it by the
applicant's ID or credit code instead of asking for paper (免证可办). The views read the
libraries as they are now: a material is never a stale copy. Each names the libraries it
reads; a view whose tables do not exist yet is skipped, and the build says so.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from datong.settings import Settings

log = logging.getLogger(__name__)

LIBRARY = "materials"
SOURCES = ["bronze.birth_certificate"]
UPSTREAM = ["population", "legal_person", "license", "credit"]
TABLES: list[str] = []  # views only; see MATERIALS


@dataclass(frozen=True)
class Material:
    name: str
    title_zh: str
    key: str
    reads: tuple[str, ...]
    sql: str


MATERIALS = [
    Material(
        "household_register_page",
        "居民户口簿（户籍页）",
        "person_id",
        ("population.person",),
        """
        SELECT p.person_id, p.name, p.gender, p.ethnicity, p.birth_date, p.household_id,
               p.relation_to_head, h.person_id AS head_id, h.name AS head_name, p.address,
               p.division_code, p.marital_status
        FROM lake.population.person p
        LEFT JOIN lake.population.person h
          ON h.household_id = p.household_id AND h.relation_to_head = '02'
        WHERE p.death_date IS NULL
        """,
    ),
    Material(
        "marriage_certificate",
        "结婚证",
        "person_id",
        ("population.person", "license.license"),
        """
        SELECT p.person_id, p.name, p.spouse_id, s.name AS spouse_name, l.license_no,
               l.issue_date AS registered_on, l.issuer_name
        FROM lake.license.license l
        JOIN lake.population.person p ON p.person_id = l.holder_id
        LEFT JOIN lake.population.person s ON s.person_id = p.spouse_id
        WHERE l.license_type = 'marriage_certificate' AND l.status = 'valid'
          AND p.marital_status = '20'
        """,
    ),
    Material(
        "business_licence",
        "营业执照",
        "credit_code",
        ("legal_person.entity", "license.license", "population.person"),
        """
        SELECT e.credit_code, e.name, e.entity_type, e.legal_representative_id,
               r.name AS legal_representative_name, e.established, e.address,
               e.division_code, l.license_no, l.issue_date, l.issuer_name
        FROM lake.legal_person.entity e
        JOIN lake.license.license l
          ON l.holder_id = e.credit_code AND l.license_type = 'business_license'
        LEFT JOIN lake.population.person r ON r.person_id = e.legal_representative_id
        WHERE l.status = 'valid' AND e.status = '存续'
        """,
    ),
    Material(
        "birth_certificate",
        "出生医学证明",
        "mother_id",
        ("silver.birth_certificate", "population.person"),
        """
        SELECT b.certificate_no, b.child_name, b.gender, b.birth_date, b.mother_id,
               b.mother_name, b.father_id, b.father_name, b.hospital, b.division_code,
               b.issue_date, m.person_id IS NOT NULL AS mother_in_population
        FROM lake.silver.birth_certificate b
        LEFT JOIN lake.population.person m ON m.person_id = b.mother_id
        """,
    ),
    Material(
        "credit_record",
        "信用记录（无违法违规证明）",
        "subject_id",
        ("credit.profile",),
        """
        SELECT subject_id, subject_kind, subject_name, grade, grade_reason_zh, penalties,
               heavy_penalties, black_lists, red_lists, explanation, graded_on
        FROM lake.credit.profile
        """,
    ),
]


def view_name(material: Material) -> str:
    return f"{LIBRARY}.{material.name}"


def create_views(settings: Settings) -> dict[str, bool]:
    """(Re)create every material's view in Trino; False for those whose tables are missing."""
    from datong.query import ensure_schemas, run, table_exists

    ensure_schemas(settings, (LIBRARY,))
    created = {}
    for material in MATERIALS:
        missing = [t for t in material.reads if not table_exists(settings, t)]
        if missing:
            log.warning("material %s skipped: %s not built yet", material.name, ", ".join(missing))
            created[material.name] = False
            continue
        run(settings, f"CREATE OR REPLACE VIEW lake.{view_name(material)} AS {material.sql}")
        created[material.name] = True
    return created


def build(spark: Any, settings: Settings, as_of: dt.date) -> dict[str, int]:
    """Nothing to compute: the views are created in Trino when the tables are registered."""
    del spark, settings, as_of
    return {}

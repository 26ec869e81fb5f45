"""Build the population and legal-person base libraries (人口、法人基础库).

Scheduled on data, not on time: the run starts when any bronze table the libraries read is
updated (each ingest task updates its table's Asset). It MERGEs the new bronze batches into
silver and rebuilds only the subjects they touch: golden records with provenance, type-2
history, conflicts, correction worklists and exclusion lists. Rules are data, in
`schemas/libraries/`. Each gold table is an Asset for the libraries and services after it.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Asset, AssetAny, task

POPULATION_SOURCES = (
    "household_register", "death_registration", "marriage_registration",
    "social_insurance", "student_enrollment", "natural_person_taxpayer",
)  # fmt: skip
LEGAL_PERSON_SOURCES = (
    "enterprise_registration", "public_institution", "social_organization",
    "enterprise_taxpayer",
)  # fmt: skip


def _asset(name: str) -> Asset:
    schema, table = name.split(".")
    return Asset(name=name, uri=f"datong://lake/{schema}/{table}")


BRONZE = [_asset(f"bronze.{t}") for t in POPULATION_SOURCES + LEGAL_PERSON_SOURCES]
PERSON = _asset("population.person")
ENTITY = _asset("legal_person.entity")

with DAG(
    dag_id="build_base_libraries",
    doc_md=__doc__,
    # Any one bronze update is enough: the build takes whatever is new in all of them.
    schedule=AssetAny(*BRONZE),
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "data-engineering-base-libraries",
        "retries": 2,
        "retry_delay": timedelta(minutes=5),
    },
    tags=["datong", "build", "population", "legal_person"],
):

    @task(outlets=[PERSON])
    def population() -> None:
        """Golden persons, households, history and conflicts (公安 authoritative)."""
        from jobs.build import build

        build(["population"])

    @task(outlets=[ENTITY])
    def legal_person() -> None:
        """Golden legal persons by registering authority; representatives linked."""
        from jobs.build import build

        build(["legal_person"])

    population() >> legal_person()

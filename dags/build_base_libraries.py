"""Build the base libraries: population, legal person, geospatial, credit, e-license, materials.

Scheduled on data, not on time: the run starts when any bronze table the libraries read is
updated (each ingest task updates its table's Asset). It MERGEs the new bronze batches into
silver and rebuilds only the subjects they touch: golden records with provenance, type-2
history, conflicts, correction worklists and exclusion lists. Rules are data, in
`schemas/libraries/`. Each gold table is an Asset for the libraries and services after it.

After them the derived libraries (空间地理、信用、电子证照、共享材料) are rebuilt from silver
and the golden records and MERGEd: address matching and placement, credit grades with their
explanations, license statuses, and the shared-material views in Trino.

Last, the gold tables are checked by their quality suites (`jobs.quality`): a failed `fail`
expectation closes the table's gate in `lake.quality.gate`, which the catalogue reads
before publishing grants or open data.
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
DERIVED_SOURCES = (
    "administrative_division", "standard_address", "administrative_license",
    "administrative_penalty", "credit_red_list", "credit_black_list", "e_license",
    "birth_certificate",
)  # fmt: skip


def _asset(name: str) -> Asset:
    schema, table = name.split(".")
    return Asset(name=name, uri=f"datong://lake/{schema}/{table}")


BRONZE = [
    _asset(f"bronze.{t}") for t in POPULATION_SOURCES + LEGAL_PERSON_SOURCES + DERIVED_SOURCES
]
PERSON = _asset("population.person")
ENTITY = _asset("legal_person.entity")
ADDRESS_MATCH = _asset("geo.address_match")
CREDIT_PROFILE = _asset("credit.profile")
LICENSES = _asset("license.license")
VALID_FOR_HOLDER = _asset("license.valid_for_holder")
QUALITY_GATE = _asset("quality.gate")

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
    tags=["datong", "build", "population", "legal_person", "geo", "credit", "license"],
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

    @task(outlets=[ADDRESS_MATCH])
    def geo() -> None:
        """Divisions, standard addresses, address matching and placement per county."""
        from jobs.build import build

        build(["geo"])

    @task(outlets=[CREDIT_PROFILE])
    def credit() -> None:
        """双公示 records, red and black lists, credit profiles and explained grades."""
        from jobs.build import build

        build(["credit"])

    @task(outlets=[LICENSES, VALID_FOR_HOLDER])
    def license() -> None:
        """E-licenses linked to holders, derived status, conflicts, validity intervals."""
        from jobs.build import build

        build(["license", "materials"])

    @task(outlets=[QUALITY_GATE])
    def quality_gates() -> None:
        """Gold tables checked by their suites; a failed `fail` rule closes the table's gate."""
        import logging

        from jobs import quality

        checked = quality.check_gold()
        closed = {name: g.reasons for name, g in checked.gates.items() if not g.passed}
        if closed:
            # The build succeeded; publication is what stops. The log says why.
            logging.getLogger(__name__).warning("not published: %s", closed)

    golden = population() >> legal_person()
    golden >> [geo(), credit(), license()] >> quality_gates()

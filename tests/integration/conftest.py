"""Shared by the base-library tests: one generated province, ingested and built once.

Two monthly batches are generated (1,500 persons, seed 7, every row-level error kind but no
whole-file failure), each ingested from every source the libraries read and built
incrementally with every library, as of the batch's extraction date. The platform (Trino on
a file:// root) is this fixture's own, so no other test's tables mix with these. Expected
values in the tests come from the generator's ``_truth/`` files, never from these tables.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datong import tables
from datong.contracts import load_resources
from datong.settings import Settings
from datong.sources import load_sources
from jobs import ingest
from jobs.build import ORDER, build
from synthetic.business_errors import KINDS as BUSINESS_KINDS
from synthetic.errors import ErrorRates
from synthetic.generate import Options, generate
from synthetic.world import extract_date
from tests.conftest import make_settings

BATCHES = ("batch-0001", "batch-0002")
LIBRARY_SOURCES = [
    "public_security.household_register",
    "civil_affairs.death_registration",
    "civil_affairs.marriage_registration",
    "human_resources.social_insurance",
    "education.student_enrollment",
    "tax.natural_person_taxpayer",
    "market_regulation.enterprise_registration",
    "institution_staffing.public_institution",
    "civil_affairs.social_organization",
    "tax.enterprise_taxpayer",
    "natural_resources.administrative_division",
    "natural_resources.standard_address",
    "credit.administrative_license",
    "credit.administrative_penalty",
    "credit.credit_red_list",
    "credit.credit_black_list",
    "data_bureau.e_license",
    "health.birth_certificate",
]


def as_of(batch: str) -> Any:
    """The extraction date of ``batch``: the day its statuses are derived for."""
    return extract_date(int(batch.rsplit("-", 1)[1]))


def ingest_batch(spark: Any, settings: Settings, landing: Path, batch: str) -> dict[str, int]:
    """Every source's delivery of ``batch``; returns quarantined rows per resource."""
    sources, resources = load_sources(), load_resources()
    quarantined = {}
    for source_id in LIBRARY_SOURCES:
        source = sources[source_id]
        resource = resources[source.resource]
        department, table = source_id.split(".")
        for path in sorted((landing / department / table / batch).iterdir()):
            result = ingest.ingest_file(spark, settings, source, resource, batch, path, landing)
            ingest.write_ledger(spark, settings, [result])
            assert result.status == "succeeded", result.error
            quarantined[resource.name] = result.quarantined
    return quarantined


def table_rows(spark: Any, settings: Settings, name: str, *key: str) -> dict[Any, dict]:
    """A table as {key: row as strings}; ``_provenance`` and the row hash left out."""
    frame = tables.read(spark, settings, name)
    out = {}
    for row in frame.drop("_provenance", "_row_hash").collect():
        values = {k: ("" if v is None else str(v)) for k, v in row.asDict().items()}
        out[values[key[0]] if len(key) == 1 else tuple(values[k] for k in key)] = values
    return out


def truth_rows(landing: Path, batch: str, name: str) -> list[dict]:
    with (landing / "_truth" / batch / name).open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


#: Tables snapshotted after each batch, with their keys.
SNAPSHOTS = {
    "person": ("population.person", ("person_id",)),
    "entity": ("legal_person.entity", ("credit_code",)),
    "address_match": ("geo.address_match", ("subject_kind", "subject_id")),
    "geo_conflict": ("geo.conflict", ("subject_kind", "subject", "kind")),
    "credit_profile": ("credit.profile", ("subject_id",)),
    "credit_unlinked": ("credit.unlinked", ("source", "record_id")),
    "license": ("license.license", ("license_no",)),
    "license_conflict": ("license.conflict", ("license_no",)),
    "license_unlinked": ("license.unlinked", ("license_no",)),
}


@pytest.fixture(scope="session")
def library_landing(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("libraries-landing")
    rates = ErrorRates.load()
    # Whole-file failures are ingest's business (tested there); here every source lands.
    rates = type(rates)(**{**rates.__dict__, "truncated_files": 0, "wrong_encoding_files": 0,
                           # enough 双公示 records naming nobody to see them listed
                           "dangling_reference": 0.05,
                           # business-rule errors are the quality suite's (tests/integration/
                           # test_quality.py): the libraries here are built from clean rows
                           **{kind: 0.0 for kind in BUSINESS_KINDS}})  # fmt: skip
    for batch in (1, 2):
        options = Options(persons=1500, seed=7, out=out, rates=rates, batch=batch,
                          households_per_chunk=500)  # fmt: skip
        generate(options)
    return out


@pytest.fixture(scope="session")
def libraries_built(
    library_landing, spark, tmp_path_factory, s3_test_settings
) -> Iterator[tuple[Settings, dict[str, dict[str, Any]]]]:
    """Incremental builds of every library after each batch; the tables after each."""
    from datong.services import platform

    settings = make_settings(tmp_path_factory.mktemp("libraries-state"), "file", s3_test_settings)
    platform.up(settings)
    try:
        snapshots: dict[str, dict[str, Any]] = {}
        for batch in BATCHES:
            quarantined = ingest_batch(spark, settings, library_landing, batch)
            result = build(list(ORDER), settings, spark, as_of=as_of(batch))
            assert result.batches == [batch]
            snapshots[batch] = {"quarantined": quarantined, "result": result}
            for label, (name, key) in SNAPSHOTS.items():
                snapshots[batch][label] = table_rows(spark, settings, name, *key)
            snapshots[batch]["conflicts"] = {
                (r["subject"], r["attribute"], r["source"])
                for r in tables.read(spark, settings, "population.conflict").collect()
            }
        yield settings, snapshots
    finally:
        platform.down(settings)

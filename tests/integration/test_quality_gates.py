"""Publication gates on the gold tables of the shared base-library build, read through Trino.

The libraries are built from rows without business-rule errors (tests/integration/
conftest.py), so every gate opens; a candidate person table with a repeated key and a birth
date that contradicts its ID closes the person gate, and only that one, until a clean run.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest

from datong import tables
from jobs import quality as quality_job
from quality.checks import GOLD_KEYS
from quality.gate import latest_gates

pytestmark = pytest.mark.integration


def _gates_after_clean_run(settings, spark):
    run = quality_job.run(list(GOLD_KEYS), settings, spark)
    return run, latest_gates(settings)


def test_gates_open_on_clean_gold_and_close_on_a_broken_candidate(libraries_built, spark):
    from pyspark.sql import functions as F

    settings, _ = libraries_built
    run, gates = _gates_after_clean_run(settings, spark)
    assert set(run.gates) == set(GOLD_KEYS)
    for name in GOLD_KEYS:
        failed = [r.check.key for r in run.results[name] if not r.success]
        assert run.gates[name].passed, (name, failed)
        assert gates[name].passed and gates[name].run_id == run.run_id

    person = tables.read(spark, settings, "population.person")
    [first, second] = [r["person_id"] for r in person.orderBy("person_id").limit(2).collect()]
    broken = person.unionByName(person.where(F.col("person_id") == first)).withColumn(
        "birth_date",
        F.when(F.col("person_id") == second, F.date_add("birth_date", 3)).otherwise(
            F.col("birth_date")
        ),
    )
    candidate = quality_job.QualityRun(uuid.uuid4().hex)
    now = dt.datetime.now()
    quality_job.validate_gold(spark, settings, "population.person", candidate, now.date(), now,
                              frame=broken)  # fmt: skip
    quality_job.write_run(spark, settings, candidate, now)
    gates = latest_gates(settings)
    closed = gates["population.person"]
    assert not closed.passed and closed.run_id == candidate.run_id
    total = person.count() + 1
    assert f"QUALITY-009 on person_id: 2 of {total} rows" in closed.reasons
    assert f"QUALITY-101 on birth_date: 1 of {total} rows" in closed.reasons
    assert "出生日期" in closed.reasons
    # Other tables' gates are their own.
    assert gates["legal_person.entity"].passed and gates["license.license"].passed
    # The failing gold rows are listed (both copies of the repeated one) with their rules.
    listed = sorted(
        (json.loads(row["_raw"])["person_id"], sorted(p["rule_id"] for p in row["problems"]))
        for row in tables.read(spark, settings, quality_job.REJECTED)
        .where(F.col("_batch_id") == candidate.run_id)
        .collect()
    )
    assert listed == sorted([(first, ["QUALITY-009"]), (first, ["QUALITY-009"]),
                             (second, ["QUALITY-101"])])  # fmt: skip

    # A clean run afterwards opens it again: the latest gate is what counts.
    run, gates = _gates_after_clean_run(settings, spark)
    assert gates["population.person"].passed and gates["population.person"].run_id == run.run_id


def test_scores_reach_the_catalogue_through_trino(libraries_built, spark):
    from quality.score import latest_scores

    settings, _ = libraries_built
    name = "bronze.credit_red_list"
    first = quality_job.run([name], settings, spark)
    second = quality_job.run([name], settings, spark)
    scores = latest_scores(settings)
    assert scores[name]["run_id"] == second.run_id != first.run_id
    assert scores[name]["score"] == pytest.approx(second.scores[name].score)
    history = tables.read(spark, settings, quality_job.SCORE).where(f"resource = '{name}'")
    assert history.count() == 2

"""Quality overhead benchmark: GX validation time as a share of ingest plus build time.

`uv run python -m bench.quality --persons 100000 --state DIR` generates a province (first
run only, into DIR/landing), then times in one Spark session (local[2]):

1. ingest of the six population sources' first batch (staging, bronze rules, Delta writes);
2. quality of bronze: the six batches' suites (both GX passes, quarantine, ledger, results,
   scores and Data Docs), as the pipeline runs them right after ingest;
3. the population build (silver without the quality-rejected rows, golden persons, history,
   conflicts, linkage);
4. quality of gold: the ``population.person`` suite and its gate.

The overhead is ((2) + (4)) / ((1) + (3)). The goal is at most 25 % at 1M persons. The
Great Expectations import and context are paid once per process, before the first suite:
they are timed apart and not counted (a scheduler's worker pays them once, not per batch).
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path

from bench.startup import machine_line
from datong.settings import Settings

SOURCES = [
    "public_security.household_register",
    "civil_affairs.death_registration",
    "civil_affairs.marriage_registration",
    "human_resources.social_insurance",
    "education.student_enrollment",
    "tax.natural_person_taxpayer",
]
BATCH = "batch-0001"
RATES = Path(__file__).with_name("error_rates.yaml")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--state", type=Path, required=True)
    args = parser.parse_args()

    from datong import tables
    from datong.contracts import load_resources
    from datong.sources import load_sources
    from datong.spark import spark_session
    from jobs import quality
    from jobs.build import build
    from jobs.ingest import ingest_file, write_ledger
    from synthetic.errors import ErrorRates
    from synthetic.generate import Options, generate

    landing = args.state / "landing"
    if not landing.exists():
        began = time.monotonic()
        generate(Options(persons=args.persons, seed=1, out=landing, rates=ErrorRates.load(RATES)))
        print(f"generate (not timed in the table): {time.monotonic() - began:.0f} s")
    settings = Settings(state_dir=args.state / "state", spark_master="local[2]",
                        spark_driver_memory="10g", spark_shuffle_partitions=8)  # fmt: skip
    spark = spark_session(settings, "bench-quality")
    spark.range(1).count()
    sources, resources = load_sources(), load_resources()
    names = [resources[sources[s].resource].name for s in SOURCES]

    began = time.monotonic()
    for source_id in SOURCES:
        source = sources[source_id]
        resource = resources[source.resource]
        # The generator writes every delivery as files, a JDBC source's too.
        folder = landing / source_id.replace(".", "/") / BATCH
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            write_ledger(spark, settings, [ingest_file(spark, settings, source, resource, BATCH,
                                                       path, landing)])  # fmt: skip
    ingest_seconds = time.monotonic() - began
    bronze_rows = sum(tables.read(spark, settings, n).count() for n in names)

    began = time.monotonic()
    quality.validator(quality.docs_dir(settings))
    gx_seconds = time.monotonic() - began

    began = time.monotonic()
    bronze = quality.run(names, settings, spark, batches={n: [BATCH] for n in names},
                         register=False)  # fmt: skip
    bronze_seconds = time.monotonic() - began

    began = time.monotonic()
    build(["population"], settings, spark, register=False)
    build_seconds = time.monotonic() - began

    began = time.monotonic()
    gold = quality.run(["population.person"], settings, spark, register=False)
    gold_seconds = time.monotonic() - began

    results = {**bronze.results, **gold.results}
    expectations = sum(len(r) for r in results.values())
    quarantined = sum(bronze.quarantined.values())
    quality_seconds = bronze_seconds + gold_seconds

    print(f"Machine: {machine_line()}; date {date.today().isoformat()}")
    print("| persons | bronze rows | expectations | ingest s | bronze quality s | build s | "
          "gold quality s | quality / (ingest + build) | quality-quarantined rows |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.persons:,} | {bronze_rows:,} | {expectations} | {ingest_seconds:.0f} | "
        f"{bronze_seconds:.0f} | {build_seconds:.0f} | {gold_seconds:.0f} | "
        f"{quality_seconds / (ingest_seconds + build_seconds):.0%} | {quarantined:,} |"
    )
    print(f"GX import and context, once per process (not counted): {gx_seconds:.1f} s")
    for name, items in results.items():
        failed = [r.check.key for r in items if not r.success]
        print(f"{name}: {len(items)} expectations, failed: {', '.join(failed) or 'none'}")
    gate = gold.gates.get("population.person")
    print(
        f"population.person gate: {'open' if gate and gate.passed else 'closed'}"
        + (f" ({gate.reasons})" if gate and not gate.passed else "")
    )


if __name__ == "__main__":
    main()

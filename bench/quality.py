"""Quality overhead benchmark: GX validation time as a share of ingest plus build time.

`uv run python -m bench.quality --persons 100000 --state DIR` generates a province (first
run only, into DIR/landing), then times in one Spark session (local[2]):

1. ingest of the six population sources' first batch (staging, bronze rules, Delta writes);
2. the population build (silver, golden persons, history, conflicts, linkage);
3. quality: each of the six bronze batches' suites plus the ``population.person`` suite
   (both GX passes, quarantine, ledger, results, scores, gate and Data Docs).

The overhead is (3) / ((1) + (2)). The goal is at most 25 % at 1M persons.
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
    build(["population"], settings, spark, register=False)
    build_seconds = time.monotonic() - began

    began = time.monotonic()
    checked = quality.run([*names, "population.person"], settings, spark,
                          batches={n: [BATCH] for n in names}, register=False)  # fmt: skip
    quality_seconds = time.monotonic() - began
    # The GX import and context (seconds) are paid once per process: shown on their own.
    expectations = sum(len(r) for r in checked.results.values())
    quarantined = sum(v for k, v in checked.quarantined.items() if k.startswith("bronze."))

    print(f"Machine: {machine_line()}; date {date.today().isoformat()}")
    print("| persons | bronze rows | expectations | ingest s | build s | quality s | "
          "quality / (ingest + build) | quality-quarantined rows |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.persons:,} | {bronze_rows:,} | {expectations} | {ingest_seconds:.0f} | "
        f"{build_seconds:.0f} | {quality_seconds:.0f} | "
        f"{quality_seconds / (ingest_seconds + build_seconds):.0%} | {quarantined:,} |"
    )
    for name, results in checked.results.items():
        failed = [r.check.key for r in results if not r.success]
        print(f"{name}: {len(results)} expectations, failed: {', '.join(failed) or 'none'}")


if __name__ == "__main__":
    main()

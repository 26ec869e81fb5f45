"""`valid_for_holder` through Trino: median and p99 latency of "valid licenses of H on D".

`uv run python -m bench.license_lookup --licenses 10000000 --state DIR` writes N license
validity intervals (about 8 per holder, as `jobs.license.valid_for_holder` lays them out:
range-partitioned and sorted by holder, so each Parquet file covers a holder range), starts
Trino on a file:// root under --state, registers the table and times `--queries` lookups of
random holders on random dates with `jobs.license.valid_on_sql`, after a warm-up. Prints a
Markdown row for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import date, timedelta
from pathlib import Path

from bench.startup import machine_line
from datong.settings import Settings

NAME = "license.valid_for_holder"
PER_HOLDER = 8


def write_intervals(spark, settings: Settings, licenses: int, files: int) -> None:  # type: ignore[no-untyped-def]
    from pyspark.sql import functions as F

    from datong import tables
    from datong.storage import remove_table

    remove_table(settings, NAME)
    holders = max(1, licenses // PER_HOLDER)
    ids = spark.range(licenses)
    holder = (F.col("id") * F.lit(2654435761) % F.lit(holders)).cast("long")
    start = F.date_add(F.lit(date(2000, 1, 1)), (F.col("id") * 7919 % 9000).cast("int"))
    frame = ids.select(
        F.concat(F.lit("4201"), F.lpad(holder.cast("string"), 14, "0")).alias("holder_id"),
        F.lit("natural_person").alias("holder_kind"),
        F.concat(F.lit("L"), F.lpad(F.col("id").cast("string"), 12, "0")).alias("license_no"),
        F.lit("driving_license").alias("license_type"),
        F.lit("机动车驾驶证").alias("license_name"),
        start.alias("valid_from"),
        F.when(F.col("id") % 5 == 0, F.lit(None).cast("date"))
        .otherwise(F.date_add(start, 6 * 365))
        .alias("valid_until"),
    )
    ordered = frame.repartitionByRange(files, "holder_id").sortWithinPartitions("holder_id")
    tables.append(ordered, settings, NAME)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--licenses", type=int, default=10_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--files", type=int, default=64)
    parser.add_argument("--state", type=Path, default=Path(".state/bench/license-lookup"))
    args = parser.parse_args()

    from datong.query import ensure_schemas, register_table, run
    from datong.services import platform
    from datong.spark import spark_session
    from jobs.license import valid_on_sql

    settings = Settings(state_dir=args.state.resolve(), spark_driver_memory="6g")
    spark = spark_session(settings, "bench-license-lookup")
    began = time.perf_counter()
    write_intervals(spark, settings, args.licenses, args.files)
    written = time.perf_counter() - began
    spark.stop()
    platform.up(settings)
    try:
        ensure_schemas(settings, ("license",))
        register_table(settings, NAME)
        holders = max(1, args.licenses // PER_HOLDER)
        rng = random.Random(7)

        def lookup() -> float:
            holder = f"4201{rng.randrange(holders):014d}"
            day = date(2000, 1, 1) + timedelta(days=rng.randrange(9000))
            started = time.perf_counter()
            run(settings, valid_on_sql(holder, day))
            return time.perf_counter() - started

        for _ in range(20):  # warm-up: metadata cache, JIT
            lookup()
        latencies = sorted(lookup() for _ in range(args.queries))
        [(count,)] = run(settings, f"SELECT count(*) FROM lake.{NAME}").rows
    finally:
        platform.down(settings)
    median = statistics.median(latencies) * 1000
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000
    print(machine_line())
    print("| licenses | holders | files | write s | queries | median ms | p99 ms |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {count:,} | {holders:,} | {args.files} | {written:.0f} | {args.queries} | "
        f"{median:.0f} | {p99:.0f} |"
    )


if __name__ == "__main__":
    main()

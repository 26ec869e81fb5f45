"""Base-library build benchmark: Spark full build against DuckDB on the same bronze files.

`uv run python -m bench.build --landing DIR --state DIR` ingests the population and
legal-person sources of an already generated province (first run only; the bronze tables
stay in --state), then times in one run:

1. `jobs.build.build(["population"], full=True)`: silver, golden persons, history,
   conflicts, exclusions, relationships and linkage (Spark local[2]);
2. an incremental build after a 1 % change: 1 % of the household register delivered again
   with a new address, as a second batch;
3. DuckDB running an equivalent SQL formulation of the person build (latest row per key,
   authority-ordered choice per attribute, one row per person) over the same bronze Parquet
   files, written to Parquet.
"""

from __future__ import annotations

import argparse
import csv
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

DUCKDB_PERSON = """
COPY (
WITH
hh AS (
  SELECT * EXCLUDE (_n) FROM (
    SELECT *, row_number() OVER (PARTITION BY person_id
      ORDER BY _batch_id DESC, update_time DESC NULLS LAST, _row_number DESC) AS _n
    FROM read_parquet('{lake}/bronze/household_register/**/*.parquet')) WHERE _n = 1),
death AS (
  SELECT * EXCLUDE (_n) FROM (
    SELECT *, row_number() OVER (PARTITION BY registration_no
      ORDER BY _batch_id DESC, registration_date DESC NULLS LAST, _row_number DESC) AS _n
    FROM read_parquet('{lake}/bronze/death_registration/**/*.parquet')) WHERE _n = 1),
marriage AS (
  SELECT * EXCLUDE (_n) FROM (
    SELECT *, row_number() OVER (PARTITION BY registration_no
      ORDER BY _batch_id DESC, registration_date DESC NULLS LAST, _row_number DESC) AS _n
    FROM read_parquet('{lake}/bronze/marriage_registration/**/*.parquet')) WHERE _n = 1),
heads AS (SELECT household_id, person_id AS head FROM hh WHERE relation_to_head = '02'),
spouses AS (SELECT household_id, person_id AS spouse FROM hh WHERE relation_to_head = '10'),
household AS (
  SELECT hh.*, CASE WHEN marital_status = '20' THEN
      CASE relation_to_head WHEN '02' THEN spouse WHEN '10' THEN head END END AS hh_spouse
  FROM hh LEFT JOIN heads USING (household_id) LEFT JOIN spouses USING (household_id)),
partners AS (
  SELECT person_id, status, spouse_id, confirmed_at FROM (
    SELECT *, row_number() OVER (PARTITION BY person_id ORDER BY confirmed_at DESC) AS _n FROM (
      SELECT male_id AS person_id, registration_type AS status,
             CASE WHEN registration_type = '结婚' THEN female_id END AS spouse_id,
             registration_date AS confirmed_at FROM marriage
      UNION ALL
      SELECT female_id, registration_type,
             CASE WHEN registration_type = '结婚' THEN male_id END, registration_date
      FROM marriage)) WHERE _n = 1),
deaths AS (
  SELECT person_id, death_date FROM (
    SELECT *, row_number() OVER (PARTITION BY person_id ORDER BY registration_date DESC) AS _n
    FROM death) WHERE _n = 1)
SELECT h.person_id, h.name, h.gender, h.ethnicity, h.birth_date, h.household_id,
       h.relation_to_head, h.address, h.division_code,
       coalesce(CASE p.status WHEN '结婚' THEN '20' WHEN '离婚' THEN '40' END,
                h.marital_status) AS marital_status,
       coalesce(p.spouse_id, h.hh_spouse) AS spouse_id,
       d.person_id IS NOT NULL OR coalesce(h.cancellation_reason = '死亡', false) AS deceased,
       coalesce(d.death_date,
                CASE WHEN h.cancellation_reason = '死亡' THEN h.cancellation_date END) AS death_date
FROM household h LEFT JOIN partners p USING (person_id) LEFT JOIN deaths d USING (person_id)
) TO '{out}' (FORMAT parquet)
"""


def _ingest(landing: Path, settings: Settings, spark) -> None:  # type: ignore[no-untyped-def]
    """Ingest the six sources' files; a file ingested already (an earlier run) is skipped."""
    from datong.contracts import load_resources
    from datong.sources import load_sources
    from jobs.ingest import ingest_file, run_source, succeeded_checksums, write_ledger
    from jobs.staging import file_checksum

    sources, resources = load_sources(), load_resources()
    for source_id in SOURCES:
        source = sources[source_id]
        began = time.monotonic()
        if source.delivery.kind == "landing":
            run_source(source_id, landing, settings, spark, register=False)
        else:
            # A database source's generated CSV, ingested as the file it would be pulled as.
            resource = resources[source.resource]
            done = succeeded_checksums(spark, settings, source_id)
            department, table = source_id.split(".")
            for path in sorted((landing / department / table).glob("batch-*/*.csv")):
                if file_checksum(path) in done:
                    continue
                result = ingest_file(spark, settings, source, resource, path.parent.name, path,
                                     landing)  # fmt: skip
                write_ledger(spark, settings, [result])
        print(f"ingest {source_id}: {time.monotonic() - began:.0f} s", flush=True)


def _one_percent_change(landing: Path, settings: Settings, spark, offset: int = 0) -> int:  # type: ignore[no-untyped-def]
    """1 % of the household register moves: a second batch with those rows' new address.

    ``offset`` (0–99) picks which 1 %, so a built state can take several changes in turn.
    """
    from datong.contracts import load_resources
    from datong.sources import load_sources
    from jobs.ingest import ingest_file, write_ledger

    source = load_sources()["public_security.household_register"]
    resource = load_resources()[source.resource]
    first = next((landing / "public_security" / "household_register").glob("batch-0001/*.csv"))
    folder = settings.state_dir / "bench-landing" / "public_security" / "household_register"
    batch = f"batch-{9999 - offset:04d}"
    target = folder / batch / first.name
    target.parent.mkdir(parents=True, exist_ok=True)
    changed = 0
    with (
        first.open(encoding="gb18030", newline="") as src,
        target.open("w", encoding="gb18030", newline="") as dst,
    ):
        reader, writer = csv.reader(src), csv.writer(dst)
        header = next(reader)
        writer.writerow(header)
        address = header.index("address")
        update = header.index("update_time")
        for number, row in enumerate(reader):
            if number % 100 == offset and len(row) == len(header):
                row[address] = row[address] + f"附{offset + 1}号"
                row[update] = "2026-07-15 09:00:00"
                writer.writerow(row)
                changed += 1
    result = ingest_file(spark, settings, source, resource, batch, target,
                         settings.state_dir / "bench-landing")  # fmt: skip
    write_ledger(spark, settings, [result])
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--landing", type=Path, required=True)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument(
        "--ingest-only", action="store_true", help="ingest (or finish ingesting) and stop"
    )
    parser.add_argument(
        "--phase",
        choices=["all", "full", "incremental"],
        default="all",
        help="full: the full build and DuckDB only (copy --state afterwards to compare code "
        "versions); incremental: the 1 %% change and incremental build on a built --state",
    )
    parser.add_argument(
        "--change",
        type=int,
        default=0,
        choices=range(100),
        metavar="0-99",
        help="which 1 %% of the household register changes (--phase incremental)",
    )
    args = parser.parse_args()

    import duckdb

    from datong import tables
    from datong.spark import spark_session
    from jobs.build import build

    # At 1M persons the silver tables and their groupings want more memory and partitions.
    settings = Settings(
        state_dir=args.state,
        spark_master="local[2]",
        spark_driver_memory="10g",
        spark_shuffle_partitions=16,
    )
    spark = spark_session(settings, "bench-build")
    spark.range(1).count()
    if args.ingest_only or not tables.exists(spark, settings, "bronze.household_register"):
        began = time.monotonic()
        _ingest(args.landing, settings, spark)
        print(f"ingest (not timed in the table): {time.monotonic() - began:.0f} s")
        if args.ingest_only:
            return
    if args.phase == "incremental":
        changed = _one_percent_change(args.landing, settings, spark, args.change)
        began = time.monotonic()
        incremental = build(["population"], settings, spark, register=False)
        print(f"Machine: {machine_line()}; date {date.today().isoformat()}")
        print(f"{changed:,} rows changed; incremental build {time.monotonic() - began:.0f} s; "
              f"{sum(r.affected for r in incremental.results):,} persons rebuilt")  # fmt: skip
        return
    bronze_rows = sum(
        tables.read(spark, settings, "bronze." + s.split(".")[1]).count() for s in SOURCES
    )

    began = time.monotonic()
    result = build(["population"], settings, spark, full=True, register=False)
    spark_seconds = time.monotonic() - began
    persons = tables.read(spark, settings, "population.person").count()

    lake = settings.local_lake_path
    out = settings.state_dir / "duckdb-person.parquet"
    began = time.monotonic()
    connection = duckdb.connect()
    connection.execute("SET threads = 2")
    connection.execute(DUCKDB_PERSON.format(lake=lake, out=out))
    duck_seconds = time.monotonic() - began
    duck_persons = connection.execute(f"SELECT count(*) FROM '{out}'").fetchone()[0]  # type: ignore[index]
    if args.phase == "full":
        print(f"Machine: {machine_line()}; date {date.today().isoformat()}")
        print(f"{persons:,} persons, {bronze_rows:,} bronze rows: Spark full build "
              f"{spark_seconds:.0f} s, DuckDB {duck_seconds:.1f} s ({duck_persons:,} persons), "
              f"ratio {spark_seconds / duck_seconds:.1f}×")  # fmt: skip
        return

    changed = _one_percent_change(args.landing, settings, spark)
    began = time.monotonic()
    incremental = build(["population"], settings, spark, register=False)
    incremental_seconds = time.monotonic() - began

    print(f"Machine: {machine_line()}; date {date.today().isoformat()}")
    print("| persons | bronze rows | Spark full build s | DuckDB person SQL s | ratio | "
          "1 % change | incremental s | incremental / full |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {persons:,} | {bronze_rows:,} | {spark_seconds:.0f} | {duck_seconds:.1f} | "
        f"{spark_seconds / duck_seconds:.1f}× | {changed:,} rows | {incremental_seconds:.0f} | "
        f"{incremental_seconds / spark_seconds:.0%} |"
    )
    print(f"DuckDB persons: {duck_persons:,}; batches: {result.batches} + {incremental.batches}")
    # What the incremental batch touched: its cost should follow these, not the table sizes.
    affected = sum(r.affected for r in incremental.results)
    upserted = sum(s.upserted for s in incremental.silver)
    print(f"Incremental batch: {upserted:,} silver rows upserted, {affected:,} persons rebuilt")


if __name__ == "__main__":
    main()

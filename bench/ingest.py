"""Ingest benchmark: CSV → bronze throughput against pyarrow.csv's parse of the same file.

`uv run python -m bench.ingest --persons 200000` generates a province, then times
(a) pyarrow.csv reading the household register (GB18030) and (b) datong's ingest of the
same file into bronze (staging, rules, bronze + quarantine + ledger writes), in one run;
the quality suite that ingest runs on the landed batch is timed apart.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

from bench.startup import machine_line
from datong.settings import Settings
from synthetic.errors import ErrorRates
from synthetic.generate import Options, generate

SOURCE = "public_security.household_register"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=200_000)
    parser.add_argument(
        "--landing", type=Path, help="an already generated province (skips generation)"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="datong-bench-ingest-"))
    try:
        landing = args.landing or work / "landing"
        if args.landing is None:
            # No file-level errors: the benchmark file must be readable.
            rates = ErrorRates.load()
            rates = type(rates)(
                **{**rates.__dict__, "truncated_files": 0, "wrong_encoding_files": 0}
            )
            generate(Options(persons=args.persons, seed=1, out=landing, rates=rates))
        path = next((landing / "public_security" / "household_register").rglob("*.csv"))
        size_mb = path.stat().st_size / 1e6

        import pyarrow.csv as pv

        began = time.monotonic()
        # pyarrow must skip the injected rows with a wrong field count, as datong quarantines them.
        table = pv.read_csv(
            path,
            read_options=pv.ReadOptions(encoding="gb18030"),
            parse_options=pv.ParseOptions(invalid_row_handler=lambda row: "skip"),
        )
        arrow_seconds = time.monotonic() - began

        from datong.spark import spark_session
        from jobs import quality
        from jobs.ingest import run_source

        # The quality suite runs inside the ingest (as `datong ingest` runs it); its share is
        # timed apart, so the CSV → bronze figure is the ingest without it.
        validation = []
        suite = quality.run

        def timed_suite(*args, **kwargs):
            began = time.monotonic()
            try:
                return suite(*args, **kwargs)
            finally:
                validation.append(time.monotonic() - began)

        quality.run = timed_suite

        settings = Settings(state_dir=work / "state", spark_master="local[2]")
        spark = spark_session(settings, "bench-ingest")
        spark.range(1).count()  # session start is not ingest time
        began = time.monotonic()
        [result] = run_source(SOURCE, landing, settings, spark, register=False)
        total_seconds = time.monotonic() - began
        quality_seconds = sum(validation)
        ingest_seconds = total_seconds - quality_seconds
        # The stack's ceiling: Spark writing the already parsed strings to Delta, no rules.
        staged = next((settings.state_dir / "staging").rglob("*.parquet"))
        began = time.monotonic()
        spark.read.parquet(str(staged)).write.format("delta").save(str(work / "ceiling"))
        ceiling_seconds = time.monotonic() - began
        print(f"Machine: {machine_line()}; date {date.today().isoformat()}")
        print(
            "| file | rows | MB | pyarrow.csv s | MB/s | datong ingest s | MB/s | ratio "
            "| + quality suite s | ratio with it |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        print(
            f"| household_register.csv (GB18030) | {table.num_rows:,} | {size_mb:.0f} | "
            f"{arrow_seconds:.1f} | {size_mb / arrow_seconds:.0f} | {ingest_seconds:.1f} | "
            f"{size_mb / ingest_seconds:.1f} | {arrow_seconds / ingest_seconds:.1%} | "
            f"{quality_seconds:.1f} | {arrow_seconds / total_seconds:.1%} |"
        )
        print(
            f"Spark + Delta write of the parsed strings alone (no rules): {ceiling_seconds:.1f} s, "
            f"{size_mb / ceiling_seconds:.1f} MB/s, "
            f"{arrow_seconds / ceiling_seconds:.1%} of pyarrow"
        )
        assert result.rows_read == result.accepted + result.quarantined
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

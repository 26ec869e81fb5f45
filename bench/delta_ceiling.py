"""The ceiling of a non-Spark ingest: pyarrow.csv parse, then delta-rs writing the strings.

`uv run --with deltalake python -m bench.delta_ceiling --landing DIR` times, on the household
register of an already generated province (GB18030), in one run and with no Spark at all:

1. pyarrow.csv parsing the file, types inferred (issue 4's yardstick);
2. the same parse with every column a string, as bronze stages it;
3. trim and NFKC (full-width to half-width) on every column with pyarrow.compute, the
   cheapest two of the bronze rules;
4. delta-rs (`deltalake`, not a project dependency) writing the result to a Delta table.

It answers whether replacing Spark in ingest would reach issue 4's goal: steps 2 + 4 are
what any ingest into Delta must do before a single check runs.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

from bench.startup import machine_line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--landing", type=Path, required=True, help="a generated province")
    args = parser.parse_args()

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pv
    from deltalake import write_deltalake

    path = next((args.landing / "public_security" / "household_register").rglob("*.csv"))
    size_mb = path.stat().st_size / 1e6
    read = pv.ReadOptions(encoding="gb18030")
    # Rows with a wrong field count are skipped, as the ingest benchmark's pyarrow run does.
    parse = pv.ParseOptions(invalid_row_handler=lambda row: "skip")

    began = time.monotonic()
    inferred = pv.read_csv(path, read_options=read, parse_options=parse)
    parse_s = time.monotonic() - began

    began = time.monotonic()
    names = inferred.column_names
    strings = pv.read_csv(
        path,
        read_options=read,
        parse_options=parse,
        convert_options=pv.ConvertOptions(column_types={n: pa.string() for n in names}),
    )
    strings_s = time.monotonic() - began

    began = time.monotonic()
    cleaned = pa.table(
        [pc.utf8_normalize(pc.utf8_trim_whitespace(strings[n]), "NFKC") for n in names],
        names=names,
    )
    clean_s = time.monotonic() - began

    out = Path(tempfile.mkdtemp(prefix="datong-bench-delta-"))
    try:
        began = time.monotonic()
        write_deltalake(str(out / "raw"), strings)
        raw_write_s = time.monotonic() - began
        began = time.monotonic()
        write_deltalake(str(out / "clean"), cleaned)
        write_s = time.monotonic() - began
    finally:
        shutil.rmtree(out, ignore_errors=True)

    def share(seconds: float) -> str:
        return f"{parse_s / seconds:.0%}"

    print(f"Machine: {machine_line()}; date {date.today().isoformat()}")
    print(f"{path.name}: {inferred.num_rows:,} rows, {size_mb:.0f} MB")
    print("| step | s | share of pyarrow.csv's speed |")
    print("|---|---|---|")
    print(f"| pyarrow.csv parse, types inferred | {parse_s:.1f} | {share(parse_s)} |")
    rows = [
        ("parse as strings + delta-rs write", strings_s + raw_write_s),
        ("parse as strings + trim + NFKC + delta-rs write", strings_s + clean_s + write_s),
    ]
    for step, seconds in rows:
        print(f"| {step} | {seconds:.1f} | {share(seconds)} |")


if __name__ == "__main__":
    main()

"""Generation benchmark: persons/s and MB/s for `datong generate` at a given scale.

`uv run python -m bench.generate --persons 1000000` (the issue's target scale); prints a
Markdown row for BENCHMARKS.md with peak memory (max RSS) of the generating process.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

from bench.startup import machine_line
from synthetic.generate import Options, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="write here and keep the output")
    args = parser.parse_args()
    out = args.keep or Path(tempfile.mkdtemp(prefix="datong-bench-"))
    began = time.monotonic()
    manifest = generate(Options(persons=args.persons, seed=args.seed, out=out))
    seconds = time.monotonic() - began
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = sum(f.records for f in manifest.files)
    print(f"Machine: {machine_line()}; date {date.today().isoformat()}")
    print(
        "| persons | legal persons | records | seconds | persons/s | MB written | MB/s | max RSS |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {manifest.persons:,} | {manifest.legal_persons:,} | {rows:,} | {seconds:.0f} | "
        f"{manifest.persons / seconds:,.0f} | {size / 1e6:,.0f} | {size / 1e6 / seconds:.1f} | "
        f"{rss_mib:,.0f} MiB |"
    )
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()

"""The population build at scale, start to end: generate, ingest, build, in one command.

`uv run python -m bench.scale --persons 10000000 --dir DIR` writes the six population
sources the build reads (`bench.build.SOURCES`) with both cores, in two generator
processes of about equal length (the household register alone, and the other five), then
ingests them and runs `bench.build` (full build, DuckDB, 1 % incremental). Each step is
skipped when its output is there already, so a rerun after a crash goes on where it
stopped; a step's time is printed when it ends.

On the 2-core machine of BENCHMARKS.md: 3M persons took 11 min to generate, 9 min to
ingest and 19 min to build (full, DuckDB and incremental); 10M should take about 1.5 h.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.build import SOURCES

#: Two groups of resources that take about as long to generate as each other.
GROUPS = [
    ["household_register"],
    [s.split(".")[1] for s in SOURCES if not s.endswith(".household_register")],
]
ERRORS = Path(__file__).with_name("error_rates.yaml")


def _generate(persons: int, seed: int, folder: Path) -> None:
    """Both groups at once, each into its own folder, then moved into ``folder/landing``."""
    landing = folder / "landing"
    if landing.exists():
        return
    began = time.monotonic()
    parts = [folder / f"generate-{n}" for n in range(len(GROUPS))]
    running = []
    for part, group in zip(parts, GROUPS, strict=True):
        shutil.rmtree(part, ignore_errors=True)
        command = [sys.executable, "-m", "datong.cli", "generate", "--persons", str(persons),
                   "--seed", str(seed), "--errors", str(ERRORS), "--out", str(part)]  # fmt: skip
        for resource in group:
            command += ["--resource", resource]
        log = (folder / f"{part.name}.log").open("w")
        running.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
    failed = [p.args for p in running if p.wait() != 0]
    if failed:
        raise SystemExit(f"generation failed (see {folder}/generate-*.log): {failed}")
    staging = folder / "landing.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for number, part in enumerate(parts):
        for department in part.iterdir():
            name = f"_truth-{number}" if department.name == "_truth" else department.name
            target = staging / name
            if target.exists():  # a department with resources in both groups
                for table in department.iterdir():
                    table.rename(target / table.name)
            else:
                department.rename(target)
        shutil.rmtree(part)
    staging.rename(landing)
    print(f"generate {persons:,} persons: {time.monotonic() - began:.0f} s", flush=True)


def _run(step: str, arguments: list[str]) -> None:
    began = time.monotonic()
    subprocess.run([sys.executable, "-m", "bench.build", *arguments], check=True)
    print(f"{step}: {time.monotonic() - began:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    _generate(args.persons, args.seed, args.dir)
    paths = ["--landing", str(args.dir / "landing"), "--state", str(args.dir / "state")]
    # Ingesting skips the files already in the ledger, so this resumes an interrupted run.
    _run("ingest", [*paths, "--ingest-only"])
    _run("build", paths)


if __name__ == "__main__":
    main()

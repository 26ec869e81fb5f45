"""Start-up benchmark: Spark session start, Trino start, optionally `make test` wall time.

Run with `make bench` (or `uv run python -m bench.startup --make-test`). Prints a Markdown
table row per measurement, with the machine line, for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from datong.services import process
from datong.services.process import free_port
from datong.services.trino import trino_spec
from datong.settings import REPO_ROOT, Settings

SPARK_PROBE = """
import time, sys
from datong.settings import Settings
from datong.spark import spark_session
began = time.monotonic()
spark = spark_session(Settings(state_dir=sys.argv[1], spark_master="local[2]"), "bench")
spark.range(10).count()
print(time.monotonic() - began)
spark.stop()
"""


def machine_line() -> str:
    cpu = "unknown cpu"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory_kb / 1024 / 1024:.0f} GiB, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def spark_start(runs: int) -> list[float]:
    """Seconds from a new Python process's first call to a usable Spark session (local[2])."""
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as state:
            out = subprocess.run(
                [sys.executable, "-c", SPARK_PROBE, state],
                capture_output=True,
                text=True,
                check=True,
            )
            times.append(float(out.stdout.strip().splitlines()[-1]))
    return times


def trino_start(runs: int) -> list[float]:
    """Seconds from launching Trino with a fresh state dir until it reports it has started."""
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as state:
            settings = Settings(state_dir=Path(state), trino_port=free_port())
            spec = trino_spec(settings)
            began = time.monotonic()
            process.start(spec)
            times.append(time.monotonic() - began)
            process.stop(spec)
    return times


def make_test() -> list[float]:
    began = time.monotonic()
    subprocess.run(["make", "test"], cwd=REPO_ROOT, check=True, capture_output=True)
    return [time.monotonic() - began]


def report(name: str, times: list[float]) -> str:
    median = statistics.median(times)
    spread = f"{min(times):.1f}–{max(times):.1f}" if len(times) > 1 else f"{times[0]:.1f}"
    return f"| {name} | {len(times)} | {median:.1f} s | {spread} s |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--make-test", action="store_true", help="also time a full `make test`")
    args = parser.parse_args()
    print(f"Machine: {machine_line()}; date {date.today().isoformat()}")
    print("| measurement | runs | median | range |")
    print("|---|---|---|---|")
    print(report("Spark session start (new process, local[2], Delta jars)", spark_start(args.runs)))
    print(report("Trino 476 start to healthy (fresh state dir)", trino_start(args.runs)))
    if args.make_test:
        print(report("`make test` wall time (runtime cached)", make_test()))


if __name__ == "__main__":
    main()

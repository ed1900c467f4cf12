"""Run every benchmark and rewrite its figures in docs/benchmarks.md.

    sudo python3 bench/all.py [--quick] [--only pod_start,pull]

Each benchmark runs on its own, one after the other (never two at once: they
would measure each other), with `--write-docs`, so each replaces its own
section of docs/benchmarks.md and its bench/results/*.json. `--quick` uses
few runs to check that everything works: it prints the figures but publishes
nothing (no docs, results into a temporary directory).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent


class Benchmark(NamedTuple):
    script: str
    options: list[str]
    runs: int  # for a publishable figure
    quick_runs: int
    quick_options: list[str] = []


BENCHMARKS = {
    "pod_start": Benchmark("pod_start.py", [], 9, 2),
    "pod_memory": Benchmark("pod_memory.py", [], 3, 1),
    "list_latency": Benchmark("list_latency.py", [], 30, 5),
    "list_latency_running": Benchmark("list_latency.py", ["--running"], 30, 5),
    "pull": Benchmark("pull.py", [], 5, 1),
    "clone_cache": Benchmark("clone_cache.py", [], 8, 1, ["--sizes", "36"]),
    "pods_at_scale": Benchmark("pods_at_scale.py", [], 5, 1, ["--pods", "3"]),
}
WRITES_JSON = {
    "pod_start.py",
    "pod_memory.py",
    "list_latency.py",
    "pull.py",
    "clone_cache.py",
    "pods_at_scale.py",
}


def command(benchmark: Benchmark, quick: bool, scratch: Path) -> list[str]:
    argv = [
        sys.executable,
        str(HERE / benchmark.script),
        *benchmark.options,
        *(benchmark.quick_options if quick else []),
        "--runs",
        str(benchmark.quick_runs if quick else benchmark.runs),
    ]
    if not quick:
        return [*argv, "--write-docs"]
    return [*argv, "--results-dir", str(scratch)] if benchmark.script in WRITES_JSON else argv


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few runs, nothing published")
    parser.add_argument("--only", help="comma-separated names: " + ", ".join(BENCHMARKS))
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    failed = []
    with tempfile.TemporaryDirectory(prefix="hcbench-results-") as scratch:
        for name in names:
            argv = command(BENCHMARKS[name], args.quick, Path(scratch))
            print(f"=== {name}: {' '.join(argv[1:])}", flush=True)
            started = time.monotonic()
            done = subprocess.run(argv, check=False)
            print(
                f"=== {name}: exit {done.returncode} after {time.monotonic() - started:.0f} s",
                flush=True,
            )
            if done.returncode != 0:
                failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

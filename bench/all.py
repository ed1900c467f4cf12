"""Run every benchmark and rewrite its figures in docs/benchmarks.md.

    sudo python3 bench/all.py [--quick] [--only pod_start,pull]

Each benchmark runs on its own, one after the other (never two at once: they
would measure each other), with `--write-docs`, so each replaces its own
section of docs/benchmarks.md and its bench/results/*.json. `--quick` uses
few runs, to check that everything works rather than to publish figures.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# name: (runs for a publishable figure, runs for --quick)
BENCHMARKS = {
    "pod_start": (9, 2),
    "pod_memory": (3, 1),
    "list_latency": (30, 5),
    "pull": (9, 2),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few runs: a smoke test")
    parser.add_argument("--only", help="comma-separated names: " + ", ".join(BENCHMARKS))
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    failed = []
    for name in names:
        runs = BENCHMARKS[name][1 if args.quick else 0]
        print(f"=== {name} ({runs} runs)", flush=True)
        started = time.monotonic()
        done = subprocess.run([sys.executable, str(HERE / f"{name}.py"), "--runs", str(runs),
                               "--write-docs"], check=False)
        print(f"=== {name}: exit {done.returncode} after {time.monotonic() - started:.0f} s",
              flush=True)
        if done.returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: `hyperctl list` latency with 20 pods, against `python3 -c pass`.

    sudo python3 bench/list_latency.py [--runs 30] [--pods 20] [--running] [--write-docs]

The 20 pods are created with `hyperctl create -p POD.json` (pending, no VM)
unless `--running` boots them (`hyperctl run -d`, 128 MB each). `list` answers
from hyperd's state store alone and never asks a VM anything, so it does the
same work for a pending pod as for a running one; booting them only adds
load from 20 idle guests. The two commands alternate, after 3 untimed warm-up
runs of each. `python3` is the very interpreter the installed hyperctl script
runs on, so the difference is hyperctl's own work: imports, the request to
hyperd and its answer, the table.

Results: bench/results/list_latency.json; `--write-docs` updates docs/benchmarks.md.
"""

from __future__ import annotations

import json
import sys

from common import (
    Hyperd,
    arguments,
    conditions,
    entry_point,
    hyperctl_command,
    machine,
    private_daemon,
    publish,
    rows,
    run_pod,
    summary,
    table,
    timed,
)

HEADING = "## hyperctl list latency (bench/list_latency.py)"
HEADING_RUNNING = "## hyperctl list latency, pods running (bench/list_latency.py --running)"
WARM_UP = 3


def create_pods(daemon: Hyperd, count: int, running: bool) -> None:
    for index in range(count):
        if running:
            seconds = run_pod(daemon, memory_mb=128)[0]
            print(f"pod {index + 1}/{count} running after {seconds:.1f} s", flush=True)
            continue
        podfile = daemon.root / f"pod-{index}.json"
        podfile.write_text(
            json.dumps(
                {
                    "id": f"bench-{index:02d}",
                    "containers": [{"image": "busybox", "command": ["sh", "-c", "sleep 100000"]}],
                }
            )
        )
        daemon.hyperctl("create", "-p", str(podfile), check=True)


def measure(runs: int, pods: int, running: bool) -> dict:
    with private_daemon() as (daemon, _guest):
        create_pods(daemon, pods, running)
        commands = {
            "hyperctl list": [*hyperctl_command(), "list"],
            "python3 -c pass": [sys.executable, "-c", "pass"],
        }
        listed = rows(timed(commands["hyperctl list"], daemon.env)[1])
        if len(listed) != pods:
            raise SystemExit(f"hyperctl list shows {len(listed)} pods, not {pods}")
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for index in range(WARM_UP + runs):
            for name, argv in commands.items():
                seconds = timed(argv, daemon.env)[0]
                if index >= WARM_UP:
                    samples[name].append(seconds)
        return {
            "samples": samples,
            "commands": commands,
            "pods": pods,
            "states": sorted({row[3] for row in listed}),
        }


def report(result: dict, heading: str) -> str:
    samples = result["samples"]
    listing, baseline = samples["hyperctl list"], samples["python3 -c pass"]
    ms = {name: [1000 * s for s in values] for name, values in samples.items()}
    difference = [1000 * (a - b) for a, b in zip(listing, baseline, strict=True)]
    ratio = summary([a / b for a, b in zip(listing, baseline, strict=True)])
    lines = [
        heading,
        "",
        f"`hyperctl list` with {result['pods']} pods ({', '.join(result['states'])}) "
        f"against `python3 -c pass` on the same interpreter, alternating, "
        f"{len(listing)} runs each; " + conditions(result["machine_start"], result["machine_end"]),
        "",
        *table([*ms.items(), ("hyperctl list − python3 -c pass", difference)], "ms", 0),
        "",
        f"Ratio hyperctl list / python3 -c pass, per run: **{ratio['median']:.1f}** median "
        f"({ratio['min']:.1f}–{ratio['max']:.1f}).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = arguments(__doc__, runs=30)
    parser.add_argument("--pods", type=int, default=20)
    parser.add_argument("--running", action="store_true", help="boot the pods (128 MB each)")
    args = parser.parse_args()
    start = machine()
    result = measure(args.runs, args.pods, args.running)
    result.update(
        machine_start=start,
        machine_end=machine(),
        summaries={name: summary(v) for name, v in result["samples"].items()},
    )
    name = "list_latency_running" if args.running else "list_latency"
    heading = HEADING_RUNNING if args.running else HEADING
    publish(args, name, result, heading, report(result, heading))


if __name__ == "__main__":
    entry_point(main)

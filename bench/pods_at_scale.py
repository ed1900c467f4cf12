"""Benchmark: 1 to 50 pods running at once: each new pod's start time and hyperd's own
latency (`hyperctl list`) as the host fills up.

    sudo python3 bench/pods_at_scale.py [--pods 50] [--runs 5] [--memory 128] [--write-docs]

One private hyperd on the defaults (VM templates on, user network). Pods are started
one after another with `hyperctl run -d` (1 vCPU, `--memory` MB, a container that
waits; an untimed first pod makes the template of their shape) and all stay running.
After each start `hyperctl list` is timed `--runs` times, and the host is sampled:
its load average, the share of its CPUs the running QEMU processes used over two
seconds (an idle guest is not free under TCG: its timer ticks are emulated), its
available memory, hyperd's resident memory and threads. The first pod that does not
start ends the run, and its one line is reported: that is where this machine's limit
was.

Results: bench/results/pods_at_scale.json; `--write-docs` updates docs/benchmarks.md.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from common import (
    arguments,
    conditions,
    entry_point,
    hyperctl_command,
    machine,
    private_daemon,
    publish,
    qemu_pids,
    run_pod,
    timed,
)
from hypercontainer.admission import mem_available

from tests.support.soak import Holdings

HEADING = "## Pods at once (bench/pods_at_scale.py)"
CHECKPOINTS = (1, 5, 10, 20, 30, 40, 50, 75, 100, 125, 150)
CPU_WINDOW = 2.0
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time the processes have used so far (those gone count 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def qemu_cpu_share(run_root: Path) -> float:
    """Percent of the machine's CPUs the pods' QEMU processes used over CPU_WINDOW."""
    pids = qemu_pids(run_root)
    before = cpu_seconds(pids)
    time.sleep(CPU_WINDOW)
    used = cpu_seconds(pids) - before
    return 100 * used / (CPU_WINDOW * (os.cpu_count() or 1))


def measure(pods: int, runs: int, memory_mb: int) -> dict:
    samples: list[dict] = []
    stopped = None
    with private_daemon() as (daemon, _guest):
        assert daemon.process is not None
        hyperd = daemon.process.pid
        listing = [*hyperctl_command(), "list"]
        # The first pod of a shape makes its template: not what the count is about.
        daemon.hyperctl(
            "run", "--rm", "--cpu", "1", "--memory", str(memory_mb), "busybox", "true", check=True
        )
        for count in range(1, pods + 1):
            try:
                start_s = run_pod(daemon, memory_mb)[0]
            except SystemExit as refused:  # timed(): "ARGV exited N: hyperctl's line"
                reason = str(refused).rpartition(" exited 1: ")[2]
                stopped = {"pod": count, "reason": reason}
                print(f"pod {count} did not start: {reason}", flush=True)
                break
            list_s = statistics.median(timed(listing, daemon.env)[0] for _ in range(runs))
            held = Holdings.of(hyperd)
            sample = {
                "pods": count,
                "start_s": start_s,
                "list_s": list_s,
                "load_average": os.getloadavg()[0],
                "qemu_cpu_percent": qemu_cpu_share(daemon.run_root),
                "available_mib": mem_available() / (1 << 20),
                "hyperd_rss_mib": held.rss_kib / 1024,
                "hyperd_threads": held.threads,
            }
            samples.append(sample)
            print(
                f"pod {count}: started in {start_s:.2f} s, list {1000 * list_s:.0f} ms, "
                f"QEMUs {sample['qemu_cpu_percent']:.0f}% of the CPUs, "
                f"load {sample['load_average']:.1f}",
                flush=True,
            )
    return {"samples": samples, "stopped": stopped, "memory_mb": memory_mb, "runs": runs}


def report(result: dict) -> str:
    by_count = {s["pods"]: s for s in result["samples"]}
    shown = [by_count[c] for c in CHECKPOINTS if c in by_count]
    if result["samples"] and result["samples"][-1] not in shown:
        shown.append(result["samples"][-1])
    lines = [
        HEADING,
        "",
        f"Pods started one after another on one hyperd (templates on, user network, "
        f"1 vCPU and {result['memory_mb']} MB each), all left running; `hyperctl list` "
        f"is the median of {result['runs']} runs after each start. "
        + conditions(result["machine_start"], result["machine_end"]),
        "",
        "| pods running | start of the last pod (s) | hyperctl list (ms) | QEMUs' CPU "
        "(% of the machine) | load average | available memory (MiB) | hyperd RSS (MiB) "
        "| hyperd threads |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in shown:
        lines.append(
            f"| {s['pods']} | {s['start_s']:.2f} | {1000 * s['list_s']:.0f} "
            f"| {s['qemu_cpu_percent']:.0f} | {s['load_average']:.1f} "
            f"| {s['available_mib']:.0f} | {s['hyperd_rss_mib']:.1f} | {s['hyperd_threads']} |"
        )
    stopped = result["stopped"]
    lines += [
        "",
        f"Pod {stopped['pod']} did not start: `{stopped['reason']}`."
        if stopped
        else f"All {len(result['samples'])} pods started.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = arguments(__doc__, runs=5)
    parser.add_argument("--pods", type=int, default=50)
    parser.add_argument("--memory", type=int, default=128, help="MB per pod")
    args = parser.parse_args()
    start = machine()
    result = measure(args.pods, args.runs, args.memory)
    result.update(machine_start=start, machine_end=machine())
    publish(args, "pods_at_scale", result, HEADING, report(result))


if __name__ == "__main__":
    entry_point(main)

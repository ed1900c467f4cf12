"""Benchmark: pod start against a bare boot of the same kernel and initrd to init.

    sudo python3 bench/pod_start.py [--runs 5] [--write-docs]

Pod start: wall time of `hyperctl run -d --cpu 1 --memory 128 busybox sh -c ...`
against a hyperd started beforehand. The command returns once the pod's
container was started in the guest; that it runs is then checked with
`hyperctl list container` (untimed), and the pod removed (untimed).

Bare boot: the QEMU driver itself starts a VM with the same kernel, initrd,
kernel arguments, vCPU, memory and accelerator (the driver's own KVM probe and
command-line builder), but no network and no shares, and the clock stops when
the console shows "hc-init: started": the first thing /init does, a point every
pod boot passes through too. The console is a FIFO, so the marker is seen the
moment QEMU writes it, without polling a file.

Runs alternate which of the two goes first; one untimed warm-up of each comes
before (page cache, the one-off KVM probe). The ratio pod / bare is taken per
run. Results: bench/results/pod_start.json; `--write-docs` updates
docs/benchmarks.md.
"""

from __future__ import annotations

import json
import math
import os
import selectors
import time
from datetime import datetime
from pathlib import Path

from common import (
    arguments,
    conditions,
    entry_point,
    machine,
    private_daemon,
    remove_pods,
    run_pod_at,
    summary,
    table,
    write_results,
    write_section,
)
from hypercontainer.config import load
from hypercontainer.drivers import VMSpec
from hypercontainer.guest.image import GuestImage
from hypercontainer_plugins.hypervisors.qemu import QemuHypervisor

HEADING = "## Pod start (bench/pod_start.py)"
MARKER = b"hc-init: started"
BOOT_TIMEOUT = 120.0
# Where a pod start's time goes: hyperd's log events for the pod, in order, each
# ending the phase named beside it; the last phase ends when hyperctl exits.
PHASES = {
    "vm started": "hyperctl to QEMU started (CLI, image check, pod record, QEMU set-up)",
    "pod running": "guest boot, init, agent start, pod set-up",
    "container running": "container created and started in the guest",
    None: "answer until hyperctl exits",
}


def bare_boot(driver: QemuHypervisor, guest: GuestImage, work: Path,
              name: str) -> tuple[float, str]:
    """Seconds from asking the driver for a VM until the guest's /init runs, and the
    accelerator the driver chose."""
    run_dir, console = work / name, work / f"{name}.console"
    os.mkfifo(console)
    # Opened first and non-blocking, so QEMU's open for writing does not wait for us.
    reader = os.open(console, os.O_RDONLY | os.O_NONBLOCK)
    spec = VMSpec(pod_id=name, vm_name=name, vcpus=1, memory_mb=128, kernel=guest.kernel,
                  initrd=guest.initrd, kernel_args=list(guest.kernel_args), run_dir=run_dir,
                  console_log=console)
    try:
        started = time.perf_counter()
        handle = driver.start(spec)
        _wait_for_marker(reader)
        return time.perf_counter() - started, handle["accelerator"]
    finally:
        driver.reap(run_dir)
        os.close(reader)
        console.unlink()


def _wait_for_marker(reader: int) -> None:
    seen = b""
    deadline = time.monotonic() + BOOT_TIMEOUT
    with selectors.DefaultSelector() as selector:
        selector.register(reader, selectors.EVENT_READ)
        while MARKER not in seen:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise SystemExit(f"bare boot: no {MARKER.decode()!r} in {BOOT_TIMEOUT:g} s")
            chunk = os.read(reader, 65536)
            if not chunk:
                raise SystemExit("bare boot: QEMU closed the console before init ran:\n"
                                 + seen.decode(errors="replace")[-2000:])
            seen = (seen + chunk)[-65536:]


def phases(log: Path, pod: str, launched: float, elapsed: float) -> dict[str, float]:
    """Seconds per phase of one pod start, from the timestamps in hyperd's log."""
    marks = {}
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("pod_id") == pod and entry.get("event") in PHASES:
            marks[entry["event"]] = datetime.fromisoformat(entry["timestamp"]).timestamp()
    ends = [marks.get(event, float("nan")) if event else launched + elapsed
            for event in PHASES]
    starts = [launched, *ends[:-1]]
    return {label: end - start for label, start, end in zip(PHASES.values(), starts, ends,
                                                             strict=True)}


def measure(runs: int) -> dict:
    with private_daemon() as (daemon, guest):
        driver = QemuHypervisor(load(str(daemon.config_file)))
        work = daemon.run_root / "bare"
        work.mkdir()

        breakdown: dict[str, list[float]] = {label: [] for label in PHASES.values()}

        def pod() -> float:
            launched, elapsed, pod_id = run_pod_at(daemon)
            for label, seconds in phases(daemon.root / "hyperd.log", pod_id, launched,
                                         elapsed).items():
                if not math.isnan(seconds):  # an event hyperd no longer logs
                    breakdown[label].append(seconds)
            remove_pods(daemon, [pod_id])
            return elapsed

        accelerators: set[str] = set()

        def bare(index: int) -> float:
            seconds, accelerator = bare_boot(driver, guest, work, f"b{index}")
            accelerators.add(accelerator)
            return seconds

        print("warm-up (untimed): one bare boot, one pod", flush=True)
        bare(0)
        pod()
        for seconds in breakdown.values():
            seconds.clear()
        samples: dict[str, list[float]] = {"bare": [], "pod": []}
        for index in range(1, runs + 1):
            order = ("bare", "pod") if index % 2 else ("pod", "bare")
            for what in order:
                samples[what].append(bare(index) if what == "bare" else pod())
            print(f"run {index}/{runs}: bare {samples['bare'][-1]:.2f} s, "
                  f"pod {samples['pod'][-1]:.2f} s", flush=True)
        return {
            **samples,
            "ratio": [p / b for p, b in zip(samples["pod"], samples["bare"], strict=True)],
            "overhead": [p - b for p, b in zip(samples["pod"], samples["bare"], strict=True)],
            "breakdown": breakdown,
            "accelerator": "/".join(sorted(accelerators)),
            "initrd_bytes": guest.initrd.stat().st_size,
            "kernel_args": " ".join(guest.kernel_args),
        }


def report(result: dict) -> str:
    ratio = summary(result["ratio"])
    lines = [
        HEADING,
        "",
        f"`hyperctl run -d --cpu 1 --memory 128 busybox sh -c '...'` until it returns with "
        f"the container running, against the QEMU driver booting the same kernel and "
        f"{result['initrd_bytes'] / 2**20:.1f} MiB initrd (1 vCPU, 128 MB, "
        f"{result['accelerator']}, `{result['kernel_args']}`) until /init prints its "
        f"first line. {len(result['ratio'])} runs, alternating; "
        + conditions(result["machine_start"], result["machine_end"]),
        "",
        *table([("bare boot to init", result["bare"]), ("pod start", result["pod"]),
                ("pod − bare", result["overhead"])], "s"),
        "",
        f"Ratio pod start / bare boot, per run: **{ratio['median']:.2f}** median "
        f"({ratio['min']:.2f}–{ratio['max']:.2f}).",
        "",
        "Where a pod start's time goes (from hyperd's log timestamps):",
        "",
        *table([item for item in result["breakdown"].items() if item[1]], "s"),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = arguments(__doc__, runs=5)
    args = parser.parse_args()
    start = machine()
    result = measure(args.runs)
    result.update(machine_start=start, machine_end=machine(),
                  summaries={k: summary(result[k]) for k in ("bare", "pod", "ratio",
                                                              "overhead")})
    path = write_results(args.results_dir, "pod_start", result)
    section = report(result)
    print(section + f"\n(results: {path})")
    if args.write_docs:
        write_section(HEADING, section)


if __name__ == "__main__":
    entry_point(main)

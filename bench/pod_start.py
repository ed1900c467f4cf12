"""Benchmark: pod start, cold and from a VM template, against a bare boot to init.

    sudo python3 bench/pod_start.py [--runs 5] [--write-docs]

Pod start: wall time of `hyperctl run -d --cpu 1 --memory 128 busybox sh -c ...`
against a hyperd started beforehand. The command returns once the pod's
container was started in the guest; that it runs is then checked with
`hyperctl list container` (untimed), and the pod removed (untimed). A "cold"
pod comes from a hyperd with `qemu.template = false` (its VM boots); a
"templated" one from a hyperd on the defaults (its VM is restored from the
template of its shape, made during the warm-up).

Bare boot: the QEMU driver itself starts a VM with the same kernel, initrd,
kernel arguments, vCPU, memory and accelerator (the driver's own KVM probe and
command-line builder), but no network and no shares, and the clock stops when
the console shows "hc-init: started": the first thing /init does, a point every
pod boot passes through too. The console is a FIFO, so the marker is seen the
moment QEMU writes it, without polling a file.

Runs rotate which of the three goes first; one untimed warm-up of each comes
before (page cache, the one-off KVM probe, the template). Ratios to the bare
boot are taken per run. Results: bench/results/pod_start.json; `--write-docs` updates
docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import selectors
import time
from datetime import datetime
from pathlib import Path

from common import (
    COLD,
    Hyperd,
    arguments,
    conditions,
    entry_point,
    machine,
    private_daemons,
    publish,
    remove_pods,
    run_pod_at,
    summary,
    table,
)
from hypercontainer.config import load
from hypercontainer.drivers import VMSpec
from hypercontainer.guest.image import GuestImage
from hypercontainer_plugins.hypervisors.qemu import QemuHypervisor

HEADING = "## Pod start (bench/pod_start.py)"
MARKER = b"hc-init: started"
BOOT_TIMEOUT = 120.0
# Where a pod start's time goes: hyperd's log events for the pod, in order, each
# ending the phase named beside it; the last phase ends when hyperctl exits. A phase
# whose event a start does not log (a cold boot restores nothing) is not one of its.
PHASES = {
    "vm started": "hyperctl to QEMU started (CLI, image check, pod record, QEMU set-up)",
    "vm restored": "template's device state loaded into the clone, the clone running",
    "agent answered": "until the guest's agent answers (cold: kernel boot, init, agent start)",
    "pod running": "pod set-up in the guest (entropy, clock, hostname, network)",
    "container running": "container created and started in the guest",
    None: "answer until hyperctl exits",
}
# The "restore to agent answering": QEMU started until its agent answered.
RESTORE_TO_AGENT = (PHASES["vm restored"], PHASES["agent answered"])


def bare_boot(
    driver: QemuHypervisor, guest: GuestImage, work: Path, name: str
) -> tuple[float, str]:
    """Seconds from asking the driver for a VM until the guest's /init runs, and the
    accelerator the driver chose."""
    run_dir, console = work / name, work / f"{name}.console"
    os.mkfifo(console)
    # Opened first and non-blocking, so QEMU's open for writing does not wait for us.
    reader = os.open(console, os.O_RDONLY | os.O_NONBLOCK)
    spec = VMSpec(
        pod_id=name,
        vm_name=name,
        vcpus=1,
        memory_mb=128,
        kernel=guest.kernel,
        initrd=guest.initrd,
        kernel_args=list(guest.kernel_args),
        run_dir=run_dir,
        console_log=console,
    )
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
                raise SystemExit(
                    "bare boot: QEMU closed the console before init ran:\n"
                    + seen.decode(errors="replace")[-2000:]
                )
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
    seconds, start = {}, launched
    for event, label in PHASES.items():
        end = marks.get(event) if event else launched + elapsed
        if end is not None:
            seconds[label], start = end - start, end
    return seconds


KINDS = ("bare", "cold", "templated")


def measure(runs: int) -> dict:
    with private_daemons(COLD, "") as [(cold, guest), (templated, _)]:
        driver = QemuHypervisor(load(str(cold.config_file)))
        work = cold.run_root / "bare"
        work.mkdir()
        breakdown: dict[str, dict[str, list[float]]] = {
            kind: {label: [] for label in PHASES.values()} for kind in KINDS[1:]
        }

        def pod(kind: str, daemon: Hyperd) -> float:
            launched, elapsed, pod_id = run_pod_at(daemon)
            for label, seconds in phases(
                daemon.root / "hyperd.log", pod_id, launched, elapsed
            ).items():
                breakdown[kind][label].append(seconds)
            remove_pods(daemon, [pod_id])
            return elapsed

        accelerators: set[str] = set()

        def bare(index: int) -> float:
            seconds, accelerator = bare_boot(driver, guest, work, f"b{index}")
            accelerators.add(accelerator)
            return seconds

        start = {
            "bare": bare,
            "cold": lambda i: pod("cold", cold),
            "templated": lambda i: pod("templated", templated),
        }
        print("warm-up (untimed): one bare boot, one cold pod, one templated pod", flush=True)
        for kind in KINDS:
            start[kind](0)
        for phases_of_kind in breakdown.values():
            for seconds in phases_of_kind.values():
                seconds.clear()
        samples: dict[str, list[float]] = {kind: [] for kind in KINDS}
        for index in range(1, runs + 1):
            order = KINDS[index % 3 :] + KINDS[: index % 3]
            for kind in order:
                samples[kind].append(start[kind](index))
            print(
                f"run {index}/{runs}: "
                + ", ".join(f"{kind} {samples[kind][-1]:.2f} s" for kind in KINDS),
                flush=True,
            )
        per_run = {
            kind: [p / b for p, b in zip(samples[kind], samples["bare"], strict=True)]
            for kind in KINDS[1:]
        }
        return {
            **samples,
            "ratio_cold": per_run["cold"],
            "ratio_templated": per_run["templated"],
            "breakdown": breakdown,
            "accelerator": "/".join(sorted(accelerators)),
            "initrd_bytes": guest.initrd.stat().st_size,
            "kernel_args": " ".join(guest.kernel_args),
        }


def report(result: dict) -> str:
    cold, templated = summary(result["ratio_cold"]), summary(result["ratio_templated"])
    restored = result["breakdown"]["templated"]
    parts = (restored[p] for p in RESTORE_TO_AGENT)
    to_agent = summary([sum(run) for run in zip(*parts, strict=True)])
    lines = [
        HEADING,
        "",
        f"`hyperctl run -d --cpu 1 --memory 128 busybox sh -c '...'` until it returns with "
        f"the container running, cold (`qemu.template = false`) and restored from the VM "
        f"template of its shape, against the QEMU driver booting the same kernel and "
        f"{result['initrd_bytes'] / 2**20:.1f} MiB initrd (1 vCPU, 128 MB, "
        f"{result['accelerator']}, `{result['kernel_args']}`) until /init prints its "
        f"first line. {len(result['bare'])} runs, rotating the order; "
        + conditions(result["machine_start"], result["machine_end"]),
        "",
        *table(
            [
                ("bare boot to init", result["bare"]),
                ("cold pod start", result["cold"]),
                ("templated pod start", result["templated"]),
            ],
            "s",
        ),
        "",
        f"Per run, pod start / bare boot: cold **{cold['median']:.2f}** median "
        f"({cold['min']:.2f}–{cold['max']:.2f}), templated **{templated['median']:.2f}** "
        f"({templated['min']:.2f}–{templated['max']:.2f}). A clone's agent answers "
        f"{to_agent['median']:.3f} s (median; {to_agent['min']:.3f}–{to_agent['max']:.3f}) "
        "after its QEMU was started: the restore and the guest's first run.",
        "",
    ]
    for kind in KINDS[1:]:
        lines += [
            f"Where a {kind} pod start's time goes (from hyperd's log timestamps):",
            "",
            *table([item for item in result["breakdown"][kind].items() if item[1]], "s"),
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = arguments(__doc__, runs=5)
    args = parser.parse_args()
    start = machine()
    result = measure(args.runs)
    result.update(
        machine_start=start,
        machine_end=machine(),
        summaries={k: summary(result[k]) for k in (*KINDS, "ratio_cold", "ratio_templated")},
    )
    publish(args, "pod_start", result, HEADING, report(result))


if __name__ == "__main__":
    entry_point(main)

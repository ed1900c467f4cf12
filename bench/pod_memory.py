"""Benchmark: host memory (PSS) per idle pod at 128 MB guest memory, for 1 and 10 pods,
cold-booted and restored from a VM template.

    sudo python3 bench/pod_memory.py [--runs 3] [--write-docs]

Each run starts one pod (`hyperctl run -d --cpu 1 --memory 128 busybox sh -c ...`),
waits until it is idle (its QEMU's PSS stops changing), and reads the PSS of
each QEMU process from /proc/<pid>/smaps_rollup; then it starts nine more,
waits again and reads all ten; then it removes them. PSS divides each shared
page among the processes mapping it, so the per-pod figure is a pod's fair
share of host memory: its guest's touched RAM plus QEMU's private memory plus
a tenth of the shared QEMU binary and libraries. A pod has no process besides
its QEMU (user networking and 9p live inside it); hyperd, which serves every
pod, is reported apart: its RSS and PSS with 0, 1 and 10 pods.

Cold pods come from a hyperd with `qemu.template = false`, templated ones from
a hyperd on the defaults: their guest RAM is a private (copy-on-write) mapping
of the template's RAM file, whose pages every clone shares until it writes them.

Results: bench/results/pod_memory.json; `--write-docs` updates docs/benchmarks.md.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from common import (
    COLD,
    GuestImage,
    Hyperd,
    arguments,
    conditions,
    entry_point,
    machine,
    private_daemons,
    publish,
    qemu_pids,
    remove_pods,
    run_pod,
    summary,
    table,
)

HEADING = "## Memory per idle pod (bench/pod_memory.py)"
SETTLE_WINDOW = 5  # samples, one a second: idle once PSS moved < SETTLE_TOLERANCE over it
SETTLE_TOLERANCE = 0.01
SETTLE_TIMEOUT = 120.0
MIB = 1024
GUEST_MB = 128
PART_PREFIX = "QEMU PSS per pod in "
MAPPING = re.compile(r"^[0-9a-f]+-[0-9a-f]+ ")
PARTS = ("guest RAM", "TCG translation cache", "guest kernel and initrd files", "QEMU itself")


def memory_kib(pid: int) -> dict[str, int]:
    """Pss and Rss of a process, from /proc/<pid>/smaps_rollup."""
    wanted = {"Pss:": "pss", "Rss:": "rss"}
    found = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(" ")
        if key in wanted:
            found[wanted[key]] = int(rest.split()[0])
    return found


def pss_parts_kib(pid: int, guest: GuestImage) -> dict[str, int]:
    """A QEMU's PSS by what its mappings hold, from /proc/<pid>/smaps: the guest's RAM
    (the mapping of the guest's size: anonymous, or a template's RAM file), the TCG
    translation cache (the only anonymous executable mapping), the kernel and initrd
    files, and everything else."""
    guest_files = {str(guest.kernel), str(guest.initrd)}
    parts = dict.fromkeys(PARTS, 0)
    part = PARTS[-1]
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        if MAPPING.match(line):
            fields = line.split(maxsplit=5)
            start, end = (int(x, 16) for x in fields[0].split("-"))
            path = fields[5] if len(fields) > 5 else ""
            if path in guest_files:
                part = PARTS[2]
            elif not path and "x" in fields[1]:
                part = PARTS[1]
            elif GUEST_MB * 2**20 <= end - start < (GUEST_MB + 4) * 2**20:
                part = PARTS[0]
            else:
                part = PARTS[-1]
        elif line.startswith("Pss:"):
            parts[part] += int(line.split()[1])
    return parts


def settle(daemon: Hyperd) -> float:
    """Wait until the QEMU processes' total PSS stops changing; seconds waited.
    Polled: nothing signals that a guest went idle."""
    started = time.monotonic()
    window: list[int] = []
    while time.monotonic() - started < SETTLE_TIMEOUT:
        window = [*window, sum(memory_kib(p)["pss"] for p in qemu_pids(daemon.run_root))]
        window = window[-SETTLE_WINDOW:]
        if len(window) == SETTLE_WINDOW and max(window) - min(window) <= SETTLE_TOLERANCE * max(
            window
        ):
            break
        time.sleep(1)
    return time.monotonic() - started


def snapshot(daemon: Hyperd, guest: GuestImage, pods: int) -> dict:
    """PSS and RSS (MiB) of every QEMU process and of hyperd."""
    pids = qemu_pids(daemon.run_root)
    if len(pids) != pods:
        raise SystemExit(f"expected {pods} qemu processes, found {len(pids)}")
    qemus = [memory_kib(pid) for pid in pids]
    parts = [pss_parts_kib(pid, guest) for pid in pids]
    assert daemon.process is not None
    hyperd = memory_kib(daemon.process.pid)
    return {
        "qemu_pss": [q["pss"] / MIB for q in qemus],
        "qemu_rss": [q["rss"] / MIB for q in qemus],
        "qemu_pss_parts": {part: [p[part] / MIB for p in parts] for part in PARTS},
        "hyperd_pss": hyperd["pss"] / MIB,
        "hyperd_rss": hyperd["rss"] / MIB,
    }


def one_run(daemon: Hyperd, guest: GuestImage, index: int, runs: int) -> dict:
    result = {"0": snapshot(daemon, guest, 0)}
    pods: list[str] = []
    try:
        for count in (1, 10):
            while len(pods) < count:
                pods.append(run_pod(daemon, memory_mb=GUEST_MB)[1])
            waited = settle(daemon)
            result[str(count)] = {**snapshot(daemon, guest, count), "settled_after": waited}
            print(
                f"run {index}/{runs}, {_pods(str(count))}: QEMU PSS per pod "
                f"{_mean(result[str(count)]['qemu_pss']):.1f} MiB "
                f"(idle after {waited:.0f} s)",
                flush=True,
            )
    finally:
        remove_pods(daemon, pods)
    return result


def _pods(count: str) -> str:
    return "1 pod" if count == "1" else f"{count} pods"


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


KINDS = ("cold", "templated")


def measure(runs: int) -> dict[str, list[dict]]:
    results: dict[str, list[dict]] = {kind: [] for kind in KINDS}
    with private_daemons(COLD, "") as [cold, templated]:
        run_pod(templated[0], memory_mb=GUEST_MB)  # the template, made outside the figures
        remove_pods(templated[0], templated[0].hyperctl("list", "-q").stdout.split())
        for index in range(1, runs + 1):
            for kind, (daemon, guest) in zip(KINDS, (cold, templated), strict=True):
                print(f"{kind}:", flush=True)
                results[kind].append(one_run(daemon, guest, index, runs))
    return results


def figures(results: list[dict]) -> dict[str, list[float]]:
    """One sample per run for each reported quantity of one kind of pod."""
    out: dict[str, list[float]] = {}
    for count in ("1", "10"):
        out[f"QEMU PSS per pod, {_pods(count)}"] = [_mean(r[count]["qemu_pss"]) for r in results]
        out[f"QEMU RSS per pod, {_pods(count)}"] = [_mean(r[count]["qemu_rss"]) for r in results]
    out["QEMU PSS total, 10 pods"] = [sum(r["10"]["qemu_pss"]) for r in results]
    for count in ("1", "10"):
        for part in PARTS:
            out[f"{PART_PREFIX}{part}, {_pods(count)}"] = [
                _mean(r[count]["qemu_pss_parts"][part]) for r in results
            ]
    for count in ("0", "1", "10"):
        out[f"hyperd RSS, {_pods(count)}"] = [r[count]["hyperd_rss"] for r in results]
    for count in ("0", "1", "10"):
        out[f"hyperd PSS, {_pods(count)}"] = [r[count]["hyperd_pss"] for r in results]
    return out


def report(result: dict) -> str:
    runs = result["runs"]
    lines = [
        HEADING,
        "",
        "Idle pods (`hyperctl run -d --cpu 1 --memory 128 busybox sh -c '...'`, measured "
        "once the QEMU processes' PSS moved less than 1 % over 5 s), cold-booted "
        "(`qemu.template = false`) and restored from the template of their shape; PSS and "
        f"RSS from /proc/<pid>/smaps_rollup. {len(runs['cold'])} runs of each; "
        + conditions(result["machine_start"], result["machine_end"]),
        "",
    ]
    for kind in KINDS:
        quantities = result["figures"][kind]
        ten = [value for r in runs[kind] for value in r["10"]["qemu_pss"]]
        lines += [
            f"### {kind.capitalize()} pods",
            "",
            *table(
                [(name, v) for name, v in quantities.items() if not name.startswith(PART_PREFIX)],
                "MiB",
                digits=1,
            ),
            "",
            "Where a QEMU's PSS goes, by mapping (the guest's RAM is the mapping of its "
            "size, the TCG translation cache the anonymous executable one; QEMU maps the "
            "guest kernel and initrd files, whose page-cache pages all QEMUs share):",
            "",
            *table(
                [
                    (name.removeprefix(PART_PREFIX), v)
                    for name, v in quantities.items()
                    if name.startswith(PART_PREFIX)
                ],
                "MiB",
                digits=1,
            ),
            "",
            f"With 10 pods the single QEMU processes ranged {min(ten):.1f}–{max(ten):.1f} MiB PSS.",
            "",
        ]
    lines += [
        "The per-pod figure is a pod's whole cost on the host except hyperd, which serves "
        "all pods and is listed apart; its growth from 0 to 10 pods is the per-pod "
        "bookkeeping on the daemon's side. A template's RAM file itself is page cache "
        "(on the templates tmpfs) shared by its clones: their PSS counts it, divided among "
        "them.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = arguments(__doc__, runs=3)
    args = parser.parse_args()
    start = machine()
    runs = measure(args.runs)
    quantities = {kind: figures(runs[kind]) for kind in KINDS}
    result = {
        "runs": runs,
        "figures": quantities,
        "machine_start": start,
        "machine_end": machine(),
        "summaries": {
            kind: {name: summary(values) for name, values in q.items()}
            for kind, q in quantities.items()
        },
    }
    publish(args, "pod_memory", result, HEADING, report(result))


if __name__ == "__main__":
    entry_point(main)

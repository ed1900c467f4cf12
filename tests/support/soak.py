"""One hyperd through many pod lifetimes: the cycle, what hyperd holds while it runs, and
what a pod may leave behind on the host. Used by tests/reliability/test_rel_soak.py
(a few dozen cycles in CI) and bench/soak.py (hundreds, figures for docs/reliability.md).

A cycle is what a user does with a short-lived pod: `run -d` (its container prints a
line, then waits), `exec` a command in it, read its `logs`, `rm` it. After it, hyperd's
open file descriptors, threads and memory are sampled, and at the end of a soak the
host must hold nothing of any pod: no QEMU, run or state directory, socket, mount,
store row, lease, tap or nftables rule beyond what it held before the first pod.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.support.daemon import processes_matching


# A container that says it started, then runs until stopped, stopping at once on SIGTERM.
def serving(marker: str) -> list[str]:
    return ["sh", "-c", f"echo {marker}; trap 'exit 0' TERM; sleep 1000000 & wait"]


Hyperctl = Callable[..., subprocess.CompletedProcess]  # hyperctl(*args) -> its result


@dataclass
class Holdings:
    """What the hyperd process holds, sampled from /proc."""

    fds: int
    threads: int
    rss_kib: int

    @classmethod
    def of(cls, pid: int) -> Holdings:
        status = Path(f"/proc/{pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        return cls(
            fds=len(os.listdir(f"/proc/{pid}/fd")),
            threads=int(fields["Threads"]),
            rss_kib=int(fields["VmRSS"].split()[0]),
        )


@dataclass
class Cycle:
    number: int
    seconds: dict[str, float] = field(default_factory=dict)  # per step
    holdings: Holdings | None = None


def cycle(hyperctl: Hyperctl, number: int) -> Cycle:
    """run -d, exec, logs, rm of one pod; each step must do what it says."""
    done = Cycle(number)
    marker = f"soak-cycle-{number}"

    def step(name: str, *args: str) -> str:
        began = time.monotonic()
        result = hyperctl(*args)
        done.seconds[name] = time.monotonic() - began
        if result.returncode != 0:
            raise AssertionError(
                f"cycle {number}: hyperctl {' '.join(args)} exited "
                f"{result.returncode}: {result.stderr.strip()}"
            )
        return result.stdout

    out = step("run", "run", "-d", "busybox", *serving(marker))
    pod = out.splitlines()[0].removeprefix("POD id is ")
    said = step("exec", "exec", pod, "echo", f"exec-{number}")
    assert said == f"exec-{number}\n", said
    logs = step("logs", "logs", pod)
    assert logs == f"{marker}\n", logs
    step("rm", "rm", pod)
    return done


@dataclass
class Footprint:
    """What the host holds of one hyperd's pods; equal before and after a soak."""

    qemu: list[int]
    run_dirs: list[str]
    state_dirs: list[str]
    sockets: list[str]
    mounts: list[str]
    rows: dict[str, int]
    network: dict[str, str]  # what a network namespace holds (if the daemon runs in one)

    def as_dict(self) -> dict:
        return asdict(self)


def footprint(
    pid: int, state_root: Path, run_root: Path, in_netns: Callable[..., str] | None = None
) -> Footprint:
    """What hyperd `pid` (its mounts are in its own mount namespace) holds;
    `in_netns(*command)`: the output of a command run in the daemon's network namespace."""
    roots = (str(state_root), str(run_root))
    mounts = [
        line.split()[4]
        for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
        if line.split()[4].startswith(roots)
    ]
    network = {}
    if in_netns is not None:
        links = json.loads(in_netns("ip", "-j", "link"))
        network = {
            "links": " ".join(sorted(link["ifname"] for link in links)),
            "nft": in_netns("nft", "list", "ruleset"),
            "addresses": in_netns("ip", "-4", "-o", "addr"),
        }
    return Footprint(
        qemu=sorted(processes_matching(b"qemu-system", str(run_root).encode())),
        run_dirs=_entries(run_root / "pods"),
        state_dirs=_entries(state_root / "pods"),
        sockets=sorted(
            str(p.relative_to(run_root))
            for p in _walk(run_root)
            if stat.S_ISSOCK(p.lstat().st_mode) and p.name != "hyperd.sock"
        ),
        mounts=mounts,
        rows=_rows(state_root / "state.db"),
        network=network,
    )


def _entries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


def _walk(root: Path):
    for directory, _, files in os.walk(root):
        for name in files:
            yield Path(directory, name)


def _rows(database: Path) -> dict[str, int]:
    """Rows of every table but the image store's, read as another process would."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as db:
        tables = [
            row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        return {
            table: db.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]
            for table in sorted(tables)
        }


def flat(samples: Sequence[Holdings], warm_up: int) -> dict[str, float]:
    """How much each holding grew from the end of the warm-up to the end: the last
    `warm_up` samples' maximum against the warm-up's last."""
    base = samples[warm_up - 1]
    tail = samples[-warm_up:]
    return {
        "fds": max(s.fds for s in tail) - base.fds,
        "threads": max(s.threads for s in tail) - base.threads,
        "rss_mib": (max(s.rss_kib for s in tail) - base.rss_kib) / 1024,
    }

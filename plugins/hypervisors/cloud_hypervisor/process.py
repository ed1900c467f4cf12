"""Helper processes (the VMM, virtiofsd): started, adopted, watched, stopped.

A process is named by its pid and its start time, so that a pid the kernel
hands to someone else after ours died is never mistaken for ours (the daemon
may adopt a VM long after it started it). Waiting uses a pidfd: a thread
blocked on it learns of the exit at once, with no polling.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Children we spawned, so that we (their parent) reap them once they exit.
_children: dict[int, subprocess.Popen] = {}
_children_lock = threading.Lock()


def start_time(pid: int) -> int | None:
    """The start time of `pid` in clock ticks since boot; None if no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])  # field 22 of stat(5)


def _state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat[stat.rindex(")") + 2]


@dataclass(frozen=True)
class Process:
    pid: int
    started: int  # clock ticks since boot (see start_time)
    argv: list[str] = field(default_factory=list, compare=False)

    @classmethod
    def spawn(cls, argv: Sequence[str], log: Path, pass_fds: Sequence[int] = ()) -> Process:
        """Start argv in its own session (it must outlive the daemon), output to `log`."""
        with open(log, "ab") as out:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                pass_fds=tuple(pass_fds),
                start_new_session=True,
            )
        with _children_lock:
            _children[popen.pid] = popen
        started = start_time(popen.pid)
        if started is None:  # gone already: remember it as dead
            started = -1
        return cls(popen.pid, started, list(argv))

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Process:
        return cls(int(record["pid"]), int(record["started"]))

    def record(self) -> dict[str, Any]:
        return {"pid": self.pid, "started": self.started}

    def alive(self) -> bool:
        """Whether this very process still runs (a zombie does not)."""
        _reap(self.pid)
        if start_time(self.pid) != self.started:
            return False
        return _state(self.pid) not in (None, "Z", "X")

    def wait(self, timeout: float | None) -> bool:
        """Block until the process exits or `timeout` passes; True if it exited."""
        if not self.alive():
            return True
        try:
            pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            return True
        try:
            # The pid may have been reused between alive() and pidfd_open().
            if start_time(self.pid) != self.started:
                return True
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            ready = poller.poll(None if timeout is None else max(timeout, 0) * 1000)
        finally:
            os.close(pidfd)
        if ready:
            _reap(self.pid)
        return bool(ready) or not self.alive()

    def signal(self, signum: int) -> None:
        if self.alive():
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def terminate(self, grace: float) -> None:
        """SIGTERM, then SIGKILL if it still runs after `grace` seconds."""
        self.signal(signal.SIGTERM)
        if not self.wait(grace):
            self.signal(signal.SIGKILL)
            self.wait(grace)


def _reap(pid: int) -> None:
    with _children_lock:
        popen = _children.get(pid)
        if popen is not None and popen.poll() is not None:
            del _children[pid]


def log_tail(log: Path, limit: int = 2000) -> str:
    """The end of a process's log, on one line, for an error message."""
    try:
        data = log.read_bytes()[-limit:]
    except OSError:
        return ""
    lines = [line.strip() for line in data.decode("utf-8", "replace").splitlines()]
    return " | ".join(line for line in lines if line)

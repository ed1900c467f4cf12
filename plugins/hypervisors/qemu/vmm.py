"""The QEMU process of one VM, known by pid, start time and run directory.

QEMU daemonizes itself (-daemonize), so it is not our child: it outlives the
daemon and never lingers as our zombie. A pid alone could be reused after the
process dies; the start time and the run directory on its command line make
sure the process we signal is still this VM's QEMU (the only process given
this run directory's pid file). Waiting uses a pidfd, so
an exit is seen at once, without polling.
"""

from __future__ import annotations

import os
import select
import signal
from dataclasses import dataclass
from pathlib import Path

from .cmdline import RunFiles


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after it.
    return stat[stat.rindex(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None  # field 22 of proc_pid_stat(5)


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except (FileNotFoundError, ProcessLookupError):
        return []


@dataclass(frozen=True)
class Vmm:
    pid: int
    started: int
    run_dir: Path

    @classmethod
    def find(cls, pid: int, run_dir: Path) -> Vmm | None:
        """The process `pid` if it is a QEMU serving `run_dir`, else None."""
        started = start_time(pid)
        vmm = cls(pid, started, run_dir) if started is not None else None
        return vmm if vmm is not None and vmm._ours() else None

    @classmethod
    def from_pidfile(cls, pidfile: Path, run_dir: Path) -> Vmm | None:
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return cls.find(pid, run_dir)

    def _ours(self) -> bool:
        # Only the QEMU of this VM was given this pid file (see cmdline.build).
        return str(RunFiles(self.run_dir).pidfile) in _cmdline(self.pid)

    def alive(self) -> bool:
        fields = _stat_fields(self.pid)
        if fields is None or fields[0] in ("Z", "X") or int(fields[19]) != self.started:
            return False
        return self._ours()

    def wait(self, timeout: float | None) -> bool:
        """Block until the process is gone or `timeout` passes; True if gone."""
        try:
            pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            return True
        try:
            if not self.alive():  # checked after opening: the pidfd is of our process
                return True
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            return bool(poller.poll(None if timeout is None else max(timeout, 0) * 1000))
        finally:
            os.close(pidfd)

    def kill(self, signum: int = signal.SIGKILL) -> None:
        try:
            pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            return
        try:
            if self.alive():  # the pidfd pins the process: no reuse between check and kill
                signal.pidfd_send_signal(pidfd, signum)
        except ProcessLookupError:
            pass
        finally:
            os.close(pidfd)

"""PID 1: reap every orphan, tell the agent which ones exited, power off at the end.

The agent runs as PID 1's only direct child. Containers and exec'd processes
are started detached, so they become PID 1's children when crun leaves them;
PID 1 reaps them and writes each (pid, wait status) to a pipe that the agent
reads, where `Reaper` hands it to whoever watches that pid.
"""

from __future__ import annotations

import os
import struct
import sys
import threading
from collections.abc import Callable

RECORD = struct.Struct("=ii")  # pid, wait status; smaller than PIPE_BUF: written atomically


def run_as_init(agent: Callable[[int], int], poweroff: bool = True) -> None:
    """Fork the agent (given the read end of the exit pipe); reap until it exits; power off."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(write_end)
        code = 1
        try:
            code = agent(read_end)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(read_end)
    os.set_blocking(write_end, False)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:  # cannot happen while the agent lives; be safe
            status = 0
            break
        except InterruptedError:
            continue
        if pid == child:
            break
        try:
            os.write(write_end, RECORD.pack(pid, status))
        except OSError:
            pass  # the agent stopped reading: it is on its way out
    os.sync()
    if poweroff:
        os.execv("/bin/busybox", ["poweroff", "-f"])
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def exit_code(status: int) -> int:
    """A wait status as a shell would report it: the exit code, or 128 + signal."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


class Reaper:
    """Delivers the exits PID 1 reports to a callback registered per pid.

    A process may exit before its pid is known to the agent (an exec'd command
    can finish before `crun exec --detach` returns), so reports nobody watches
    are kept, numbered: `watch(pid, since=mark())` with a mark taken before the
    process was started ignores a report about an older process with that pid.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watchers: dict[int, Callable[[int], None]] = {}
        self._unclaimed: dict[int, tuple[int, int]] = {}  # pid -> (report number, status)
        self._reports = 0

    def mark(self) -> int:
        with self._lock:
            return self._reports

    def watch(self, pid: int, on_exit: Callable[[int], None], since: int) -> None:
        """Call on_exit(exit_code) once `pid` exits (at once if it already has)."""
        with self._lock:
            number, status = self._unclaimed.pop(pid, (-1, 0))
            if number < since:
                self._watchers[pid] = on_exit
                return
        on_exit(exit_code(status))

    def deliver(self, pid: int, status: int) -> None:
        with self._lock:
            self._reports += 1
            watcher = self._watchers.pop(pid, None)
            if watcher is None:
                # Not watched (yet): crun's helper processes, or a race with watch().
                self._unclaimed[pid] = (self._reports, status)
                if len(self._unclaimed) > 4096:
                    self._unclaimed.pop(next(iter(self._unclaimed)))
                return
        watcher(exit_code(status))

    def run(self, fd: int) -> None:
        """Read reports from PID 1's pipe until it closes."""
        with os.fdopen(fd, "rb", buffering=0) as pipe:
            pending = b""
            while chunk := pipe.read(RECORD.size * 256):
                pending += chunk
                whole = len(pending) - len(pending) % RECORD.size
                for offset in range(0, whole, RECORD.size):
                    self.deliver(*RECORD.unpack_from(pending, offset))
                pending = pending[whole:]

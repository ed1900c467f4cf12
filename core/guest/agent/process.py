"""One process crun runs for us: a container's main process or an exec'd one."""

from __future__ import annotations

import threading
from collections.abc import Callable

from .stdio import Stdio

CREATED, RUNNING, EXITED = "created", "running", "exited"
# After a process exits, how long its output may still trail in (a child it
# left behind can hold the pipes open forever).
DRAIN_TIMEOUT = 5.0


class Process:
    def __init__(self, key: str, container: str, exec_id: str | None, stdio: Stdio) -> None:
        self.key = key
        self.container = container
        self.exec_id = exec_id
        self.stdio = stdio
        self.pid: int | None = None
        self.status = CREATED
        self.code: int | None = None
        self.exited = threading.Event()

    def running(self, pid: int) -> None:
        self.pid = pid
        self.status = RUNNING

    def on_exit(self, code: int, report: Callable[[Process], None]) -> None:
        """Called by the reaper: finish in a thread, the reaper must not wait for output."""
        threading.Thread(
            target=self._finish, args=(code, report), daemon=True, name=f"exit-{self.key}"
        ).start()

    def _finish(self, code: int, report: Callable[[Process], None]) -> None:
        self.stdio.stop_stdin()
        self.stdio.wait_drained(DRAIN_TIMEOUT)
        self.code = code
        self.status = EXITED
        self.exited.set()
        report(self)

    def describe(self) -> dict:
        return {"status": self.status, "code": self.code, "pid": self.pid}

"""A task's process as containerd sees it: its init or one exec, with its state and exit."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from .stdio import ProcessIO

CREATED, RUNNING, STOPPED = "created", "running", "stopped"
VM_GONE_STATUS = 137  # the process died with its VM: as if SIGKILLed


class Process:
    def __init__(
        self, task_id: str, exec_id: str, io: ProcessIO, spec: dict[str, Any] | None = None
    ) -> None:
        self.task_id, self.exec_id = task_id, exec_id  # exec_id "": the task's init
        self.io = io
        self.spec = spec  # an exec's OCI process
        self.hyperd_exec_id: str | None = None
        self.pid = 0
        self.status = CREATED
        self.exit_status = 0
        self.exited_at: datetime | None = None
        self.exited = threading.Event()
        self.lock = threading.Lock()

    @property
    def id(self) -> str:
        """The id events carry: the exec's, or the task's for its init."""
        return self.exec_id or self.task_id

    def started(self, pid: int) -> None:
        with self.lock:
            if self.status == CREATED:
                self.pid, self.status = pid, RUNNING

    def set_exited(self, status: int | None, at: datetime | None = None) -> bool:
        """Record the exit once; False if it was recorded already."""
        with self.lock:
            if self.status == STOPPED:
                return False
            self.status = STOPPED
            self.exit_status = VM_GONE_STATUS if status is None else status
            self.exited_at = at or datetime.now(UTC)
        self.exited.set()
        return True


def parse_time(text: str | None) -> datetime | None:
    """hyperd's ISO times (UTC)."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None

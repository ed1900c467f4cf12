"""Live listeners of a process's output and exit: attach, exec and run streams.

A process is known by its key: a container id for a container's main
process, `<container id>/<exec id>` for an exec. Listeners register before the process
starts, so nothing it prints is missed.
"""

from __future__ import annotations

import queue
import threading
from collections import defaultdict
from typing import Any

from .guest.agent.protocol import KEY_SEPARATOR

PENDING_BYTES = 4 << 20  # output one stream's client may leave untaken before its producer waits
STALL_TIMEOUT = 30.0  # seconds a producer waits for a client that takes nothing; then it is cut


class Listener:
    """What one stream receives: ("started",), ("out", fd, data) items, then ("exit", code,
    error) or ("gone",). Its consumer takes them with `take()`.

    "started" says the process exists, so input sent from then on reaches it.

    Output the consumer has not taken yet is bounded: beyond `PENDING_BYTES` the
    producer (the pod's agent deliveries) waits, so a slow reader slows the process
    down instead of growing hyperd's memory; a consumer that takes nothing for
    `STALL_TIMEOUT` seconds is cut off (its stream ends with an error) and the
    process runs on.
    """

    def __init__(self) -> None:
        self.items: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.detached = False  # the stream's client said it leaves the process running
        self._pending = 0  # bytes of output queued, not taken
        self._room = threading.Condition()
        self._done = False  # ended, gone or cut: output is dropped

    def take(self) -> tuple[Any, ...]:
        item = self.items.get()
        if item[0] == "out":
            with self._room:
                self._pending -= len(item[2])
                self._room.notify_all()
        return item

    def started(self) -> None:
        self.items.put(("started",))

    def output(self, fd: str, data: bytes) -> None:
        with self._room:
            if not self._room.wait_for(
                lambda: (
                    self._done or self._pending + len(data) <= PENDING_BYTES or not self._pending
                ),
                STALL_TIMEOUT,
            ):
                self._done = True
                self.items.put(
                    (
                        "exit",
                        None,
                        f"stopped reading: its output was not taken for {STALL_TIMEOUT:g} s",
                    )
                )
            if self._done:
                return
            self._pending += len(data)
            self.items.put(("out", fd, data))

    def exit(self, code: int | None, error: str | None = None) -> None:
        self._end()
        self.items.put(("exit", code, error))

    def client_gone(self) -> None:
        """The stream's client hung up: its server side stops waiting for output."""
        self._end()
        self.items.put(("gone",))

    def _end(self) -> None:
        with self._room:
            self._done = True
            self._room.notify_all()


class Subscribers:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[str, list[Listener]] = defaultdict(list)

    def add(self, key: str, listener: Listener) -> None:
        with self._lock:
            self._by_key[key].append(listener)

    def remove(self, key: str, listener: Listener) -> None:
        with self._lock:
            listeners = self._by_key.get(key, [])
            if listener in listeners:
                listeners.remove(listener)
            if not listeners:
                self._by_key.pop(key, None)

    def _current(self, key: str) -> list[Listener]:
        with self._lock:
            return list(self._by_key.get(key, ()))

    def started(self, key: str) -> None:
        for listener in self._current(key):
            listener.started()

    def output(self, key: str, fd: str, data: bytes) -> None:
        for listener in self._current(key):
            listener.output(fd, data)

    def exit(self, key: str, code: int | None, error: str | None = None) -> None:
        for listener in self._current(key):
            listener.exit(code, error)

    def end_execs(self, container_id: str, error: str) -> None:
        """The container's VM is gone: no exit will come for its exec'd processes, so
        whoever waits on one is told now."""
        prefix = container_id + KEY_SEPARATOR
        with self._lock:
            keys = [key for key in self._by_key if key.startswith(prefix)]
        for key in keys:
            self.exit(key, None, error)

"""Live listeners of a process's output and exit: attach, exec and run streams.

A process is known by its key: a container id for a container's main
process, an exec id for an exec. Listeners register before the process
starts, so nothing it prints is missed.
"""

from __future__ import annotations

import queue
import threading
from collections import defaultdict
from typing import Any


class Listener:
    """What one stream receives: ("started",), ("out", fd, data) items, then ("exit", code,
    error) or ("gone",).

    "started" says the process exists, so input sent from then on reaches it.
    """

    def __init__(self) -> None:
        self.items: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.detached = False  # the stream's client said it leaves the process running

    def started(self) -> None:
        self.items.put(("started",))

    def output(self, fd: str, data: bytes) -> None:
        self.items.put(("out", fd, data))

    def exit(self, code: int | None, error: str | None = None) -> None:
        self.items.put(("exit", code, error))

    def client_gone(self) -> None:
        """The stream's client hung up: its server side stops waiting for output."""
        self.items.put(("gone",))


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

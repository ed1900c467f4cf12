"""What the guest sent, handed to the daemon in order by a thread of its own.

The agent client's reader only decodes; events and process output wait here
until this thread has given them to their callbacks. So a callback that takes
its time (a client reading output slowly, a store transaction for an exit)
never holds up the replies the reader is waiting for, and what waits is
counted: the client stops acknowledging output once `hold` bytes wait (the
agent then holds its producers, as a full pipe would), and a guest that sends
beyond `limit` regardless is ignoring the protocol's flow control.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Any

from ..log import get_logger

Delivery = tuple[int, Callable[..., None], tuple]  # (size, callback, arguments)


class BacklogExceeded(Exception):
    """More than `limit` bytes wait for delivery."""


class Deliveries:
    def __init__(
        self, name: str, hold: int, limit: int, on_drained: Callable[[], None], **log_context: Any
    ) -> None:
        self.hold, self.limit = hold, limit
        self._on_drained = on_drained  # called once the backlog is back at `hold` or below
        self._items: collections.deque[Delivery] = collections.deque()
        self._waiting = 0  # bytes queued or being delivered
        self._cond = threading.Condition()
        self._closing = False
        self.finished = threading.Event()  # closed, and everything queued was delivered
        self._log = get_logger(**log_context)
        self.thread = threading.Thread(target=self._run, daemon=True, name=name)
        self.thread.start()

    @property
    def waiting(self) -> int:
        return self._waiting

    def put(self, batch: list[Delivery]) -> None:
        """Queue deliveries; raises BacklogExceeded (queueing nothing) beyond `limit`."""
        size = sum(item[0] for item in batch)
        with self._cond:
            if self._waiting + size > self.limit:
                raise BacklogExceeded(f"{self._waiting + size} bytes wait for delivery")
            self._items.extend(batch)
            self._waiting += size
            self._cond.notify_all()

    def close(self) -> None:
        """Deliver what is queued, then stop."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._items or self._closing)
                    if not self._items:
                        return
                    size, callback, args = self._items.popleft()
                try:
                    callback(*args)
                except Exception:  # noqa: BLE001 - one failing callback must not stop the next
                    self._log.exception("agent client callback failed")
                with self._cond:
                    was_held = self._waiting > self.hold
                    self._waiting -= size
                    drained = was_held and self._waiting <= self.hold
                if drained:
                    self._on_drained()
        finally:
            self.finished.set()

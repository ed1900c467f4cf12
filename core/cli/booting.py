"""What `run` shows on a terminal while a pod starts: booting, then starting containers.

One status line on stderr, rewritten in place as hyperd's lifecycle events
arrive (GET /events: the pod started, i.e. its VM booted and its agent
answered; each container started), and erased when the start is over. Off a
terminal nothing is shown: a script's output stays the command's own.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

from .client import Client, CommandError

if TYPE_CHECKING:
    from .client import _Lines


class StartProgress:
    def __init__(self, client: Client, pod: str, stream: TextIO | None = None) -> None:
        self.client, self.pod = client, pod
        self.stream = stream or sys.stderr
        self.shown = self.stream.isatty()
        self._lock = threading.Lock()
        self._done = False
        self._response: _Lines | None = None  # the events stream, once open

    def __enter__(self) -> StartProgress:
        if self.shown:
            self._show(f"booting the VM of pod {self.pod}")
            since = datetime.now(UTC).isoformat()
            threading.Thread(target=self._follow, args=(since,), daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """The start is over (or failed): the line goes, the events stream with it."""
        with self._lock:
            if self._done:
                return
            self._done = True
            if self.shown:
                self.stream.write("\r\x1b[2K")
                self.stream.flush()
            if self._response is not None:
                self._response.shutdown()

    def _show(self, text: str) -> None:
        with self._lock:
            if not self._done:
                self.stream.write(f"\r\x1b[2K{text} ...")
                self.stream.flush()

    def _follow(self, since: str) -> None:
        try:
            response = self.client.stream_lines("GET", "/events", query={"since": since})
        except CommandError:
            return  # no events (the hook is off): the first line stays until the end
        with self._lock:
            self._response = response
            if self._done:
                response.shutdown()
                return
        with contextlib.suppress(CommandError, OSError, ValueError), contextlib.closing(response):
            for event in response:
                if event.get("pod") == self.pod or event.get("id") == self.pod:
                    if event["type"] == "pod" and event["action"] == "start":
                        self._show(f"starting the containers of pod {self.pod}")
                    elif event["type"] == "container" and event["action"] == "start":
                        self._show(f"started container {event['name']}")

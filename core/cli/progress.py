"""Pull and push progress for hyperctl: one line per blob on a terminal, a summary otherwise.

Events come from the images driver, e.g.
{"id": "f9cb99f02131", "status": "downloading", "current": 1048576, "total": 2097152}.
On a terminal each layer keeps its own line, rewritten in place with ANSI
cursor moves, as `docker pull` does; elsewhere (a pipe, a log file) nothing is
printed while pulling and one summary line at the end.
"""

from __future__ import annotations

import shutil
from typing import Any, TextIO

from .tables import human_size

LABELS = {
    "waiting": "Waiting",
    "downloading": "Downloading",
    "verifying": "Verifying Checksum",
    "extracting": "Extracting",
    "done": "Pull complete",
    "exists": "Already exists",
    # push
    "preparing": "Preparing",
    "pushing": "Pushing",
    "pushed": "Pushed",
    "present": "Layer already exists",
    "mounted": "Mounted from",
}
TRANSFERRED = ("done", "pushed")  # bytes moved; the other finished states moved none
FINISHED = (*TRANSFERRED, "exists", "present", "mounted")
BAR_WIDTH = 30


def bar(current: int, total: int, width: int = BAR_WIDTH) -> str:
    """[=====>      ] for current of total."""
    filled = min(width, width * current // total) if total > 0 else 0
    if filled == width:
        return "[" + "=" * width + "]"
    return "[" + "=" * filled + ">" + " " * (width - filled - 1) + "]"


def describe(event: dict[str, Any]) -> str:
    """The line shown for a layer's latest event."""
    status = event.get("status", "")
    line = f"{event.get('id', '?')}: {LABELS.get(status, status)}"
    current, total = int(event.get("current") or 0), int(event.get("total") or 0)
    if status in ("downloading", "pushing") and total:
        line += f" {bar(current, total)} {human_size(current)}/{human_size(total)}"
    elif status == "mounted":
        line += f" {event.get('from', '?')}"
    return line


class ProgressRenderer:
    def __init__(
        self,
        stream: TextIO,
        tty: bool | None = None,
        width: int | None = None,
        verb: str = "pulled",
        summary: bool = True,
    ) -> None:
        self.stream = stream
        self.verb = verb  # for the summary: "3 layer(s) pulled"
        self.summary = summary  # off a terminal, say what was done at the end
        self.tty = stream.isatty() if tty is None else tty
        self.width = width or shutil.get_terminal_size().columns
        self.layers: dict[str, dict[str, Any]] = {}  # layer id -> latest event, in order
        self._lines = 0  # how many layer lines are on the screen

    def update(self, event: dict[str, Any]) -> None:
        layer = event.get("id")
        if not layer or "status" not in event:
            return
        self.layers[layer] = event
        if self.tty:
            self._draw(layer)

    def close(self) -> None:
        """Off a terminal: one summary line, once every layer is there."""
        events = list(self.layers.values())
        if (
            self.tty
            or not self.summary
            or not events
            or any(e["status"] not in FINISHED for e in events)
        ):
            return
        fetched = [e for e in events if e["status"] in TRANSFERRED]
        size = sum(int(e.get("total") or 0) for e in fetched)
        summary = f"{len(fetched)} layer(s) {self.verb} ({human_size(size)})"
        if len(fetched) < len(events):
            summary += f", {len(events) - len(fetched)} already present"
        self.stream.write(summary + "\n")
        self.stream.flush()

    def _draw(self, layer: str) -> None:
        line = describe(self.layers[layer])[: max(self.width - 1, 10)]
        position = list(self.layers).index(layer)
        if position >= self._lines:  # a new layer: a new line at the bottom
            self.stream.write(line + "\n")
            self._lines += 1
        else:  # go up to the layer's line, rewrite it, come back down
            up = self._lines - position
            self.stream.write(f"\x1b[{up}A\r\x1b[2K{line}\n")
            if up > 1:
                self.stream.write(f"\x1b[{up - 1}B")
        self.stream.flush()

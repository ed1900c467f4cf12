"""Container logs: one JSON-lines file per container, and live followers.

Each line is {"time", "stream", "log"} (time: UTC, ISO 8601, microseconds);
bytes that are not UTF-8 survive as surrogate escapes. Followers in the daemon
wait on a condition that the writer notifies, so `logs -f` never polls the file.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path


def encode_line(stream: str, data: bytes) -> str:
    text = data.decode("utf-8", "surrogateescape")
    return json.dumps({"time": stamp(datetime.now(UTC)), "stream": stream, "log": text}) + "\n"


def stamp(moment: datetime) -> str:
    """A time as log lines hold it: UTC, microseconds; such texts sort as times do."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def decode_line(line: str) -> tuple[str, str, bytes]:
    """(time, stream, data) of one log line."""
    entry = json.loads(line)
    return entry["time"], entry["stream"], entry["log"].encode("utf-8", "surrogateescape")


class ContainerLog:
    """Appends a container's output and wakes whoever follows it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.changed = threading.Condition()
        self.ended = False  # the container's current process has exited

    def append(self, stream: str, data: bytes) -> None:
        if not data:
            return
        with self.changed:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(encode_line(stream, data))
            self.changed.notify_all()

    def reopen(self) -> None:
        """A new process of the container starts writing."""
        with self.changed:
            self.ended = False
            self.changed.notify_all()

    def end(self) -> None:
        with self.changed:
            self.ended = True
            self.changed.notify_all()

    def read(
        self,
        tail: int | None = None,
        follow: bool = False,
        stop: threading.Event | None = None,
        since: datetime | None = None,
    ) -> Iterator[tuple[str, str, bytes]]:
        """(time, stream, data) entries so far (those from `since`, the last `tail` of
        them), then new ones while following."""
        offset = 0
        lines, offset = self._read_from(offset)
        entries: Iterator[tuple[str, str, bytes]] = (decode_line(line) for line in lines)
        if since is not None:
            first = stamp(since)
            entries = (entry for entry in entries if entry[0] >= first)
        if tail is not None:
            entries = iter(deque(entries, maxlen=tail) if tail > 0 else [])
        yield from entries
        while follow and not (stop and stop.is_set()):
            with self.changed:
                lines, offset = self._read_from(offset)
                if not lines:
                    if self.ended:
                        return
                    self.changed.wait(timeout=1.0)  # also rechecks `stop`
                    continue
            yield from (decode_line(line) for line in lines)

    def _read_from(self, offset: int) -> tuple[list[str], int]:
        try:
            with self.path.open("r", encoding="utf-8") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            return [], offset
        complete = data[: data.rfind("\n") + 1]
        return complete.splitlines(), offset + len(complete.encode("utf-8"))

"""Container logs: one JSON-lines file per container, and live followers.

Each line is {"time", "stream", "log"} (time: UTC, ISO 8601, microseconds);
bytes that are not UTF-8 survive as surrogate escapes. Followers in the daemon
wait on a condition that the writer notifies, so `logs -f` never polls the file.
"""

from __future__ import annotations

import json
import os
import threading
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from .diskspace import is_disk_full
from .log import get_logger

log = get_logger()


def _append_whole(path: Path, line: bytes) -> None:
    """Append `line` to `path` whole, or, if that fails part way, not at all."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        end = os.lseek(fd, 0, os.SEEK_END)
        try:
            rest = memoryview(line)
            while rest:
                rest = rest[os.write(fd, rest) :]
        except OSError:
            os.ftruncate(fd, end)
            raise
    finally:
        os.close(fd)


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
        self.dropping = False  # entries are being dropped: the disk is full

    def append(self, stream: str, data: bytes) -> None:
        """Add an entry. On a full disk it is dropped, said once in hyperd's log until an
        entry is written again; the file never keeps part of a line (every later entry
        would be unreadable, and with it the whole log)."""
        if not data:
            return
        with self.changed:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                _append_whole(self.path, encode_line(stream, data).encode())
            except OSError as e:
                if not is_disk_full(e):
                    raise
                if not self.dropping:
                    log.warning("container output not logged: no space left", path=str(self.path))
                self.dropping = True
                return
            self.dropping = False
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

"""Container logs: JSON-lines files per container, rotated, and live followers.

Each line is {"time", "stream", "log"} (time: UTC, ISO 8601, microseconds);
bytes that are not UTF-8 survive as surrogate escapes. Followers in the daemon
wait on a condition that the writer notifies, so `logs -f` never polls the file.

A log is rotated as Docker's log drivers do with max-size and max-file: when the
next entry would take the file beyond `max_bytes`, it becomes `<name>.1` (the
older ones move up, the oldest beyond `max_files` goes), so a container, or a
guest, that writes without end takes bounded disk.
"""

from __future__ import annotations

import json
import os
import threading
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


Entry = tuple[str, str, bytes]  # time, stream, data


def last_lines(entries: list[Entry], count: int) -> list[Entry]:
    """What of `entries` holds the last `count` lines of output, as Docker's `--tail`
    counts (an entry is a chunk of output: the first one kept is cut to where its line
    begins; output that does not end with a newline ends with a line all the same)."""
    wanted, kept = count, []
    for index, (time, stream, data) in enumerate(reversed(entries)):
        end = len(data) - 1 if index == 0 and data.endswith(b"\n") else len(data)
        while wanted > 0 and (end := data.rfind(b"\n", 0, end)) >= 0:
            wanted -= 1
        if wanted == 0 or count <= 0:
            begins = end + 1 if count > 0 else len(data)
            kept.append((time, stream, data[begins:]))
            break
        kept.append((time, stream, data))
    return [entry for entry in reversed(kept) if entry[2]]


def decode_line(line: str) -> tuple[str, str, bytes]:
    """(time, stream, data) of one log line."""
    entry = json.loads(line)
    return entry["time"], entry["stream"], entry["log"].encode("utf-8", "surrogateescape")


class ContainerLog:
    """Appends a container's output and wakes whoever follows it."""

    def __init__(self, path: Path, max_bytes: int | None = None, max_files: int = 1) -> None:
        self.path = path
        self.max_bytes, self.max_files = max_bytes, max_files
        self.changed = threading.Condition()
        self.ended = False  # the container's current process has exited
        self.dropping = False  # entries are being dropped: the disk is full
        self.rotations = 0  # so far, by this process: a follower's offset is in one file

    def files(self) -> list[Path]:
        """The log's files, oldest first."""
        return [self._rotated(n) for n in range(self.max_files - 1, 0, -1)] + [self.path]

    def _rotated(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}")

    def append(self, stream: str, data: bytes) -> None:
        """Add an entry. On a full disk it is dropped, said once in hyperd's log until an
        entry is written again; the file never keeps part of a line (every later entry
        would be unreadable, and with it the whole log)."""
        if not data:
            return
        line = encode_line(stream, data).encode()
        with self.changed:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if self._full_with(len(line)):
                    self._rotate()
                _append_whole(self.path, line)
            except OSError as e:
                if not is_disk_full(e):
                    raise
                if not self.dropping:
                    log.warning("container output not logged: no space left", path=str(self.path))
                self.dropping = True
                return
            self.dropping = False
            self.changed.notify_all()

    def _full_with(self, more: int) -> bool:
        if self.max_bytes is None:
            return False
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return False
        return size > 0 and size + more > self.max_bytes

    def _rotate(self) -> None:
        """`<name>.N-1` becomes `<name>.N`, ..., the current file `<name>.1` (with one
        file only, the current one is dropped); the next entry starts a new file."""
        for n in range(self.max_files - 1, 0, -1):
            older = self.path if n == 1 else self._rotated(n - 1)
            if older.exists():
                os.replace(older, self._rotated(n))
        self.path.unlink(missing_ok=True)  # max_files 1: nothing kept
        self.rotations += 1

    def remove(self) -> None:
        with self.changed:
            for path in self.files():
                path.unlink(missing_ok=True)

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
        """(time, stream, data) entries so far (those from `since`; with `tail`, only
        what holds their last `tail` lines), then new ones while following."""
        with self.changed:  # no rotation while the files are read
            lines = [line for path in self.files()[:-1] for line in _read_lines(path, 0)[0]]
            current, offset = _read_lines(self.path, 0)
            rotations = self.rotations
        entries: Iterator[tuple[str, str, bytes]] = (
            decode_line(line) for line in [*lines, *current]
        )
        if since is not None:
            first = stamp(since)
            entries = (entry for entry in entries if entry[0] >= first)
        if tail is not None:
            entries = iter(last_lines(list(entries), tail))
        yield from entries
        while follow and not (stop and stop.is_set()):
            with self.changed:
                lines, offset = self._read_since(rotations, offset)
                rotations = self.rotations
                if not lines:
                    if self.ended:
                        return
                    self.changed.wait(timeout=1.0)  # also rechecks `stop`
                    continue
            yield from (decode_line(line) for line in lines)

    def _read_since(self, rotations: int, offset: int) -> tuple[list[str], int]:
        """Lines written since `offset` in the file that was current `rotations` rotations
        ago, and the offset reached in today's (what rotated beyond max_files is lost)."""
        missed = self.rotations - rotations
        if not missed:
            return _read_lines(self.path, offset)
        lines: list[str] = []
        for n in range(missed, 0, -1):
            if n < self.max_files:
                lines += _read_lines(self._rotated(n), offset if n == missed else 0)[0]
        current, offset = _read_lines(self.path, 0)
        return lines + current, offset


def _read_lines(path: Path, offset: int) -> tuple[list[str], int]:
    """The complete lines of `path` from `offset`, and the offset after them."""
    try:
        with path.open("r", encoding="utf-8") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    complete = data[: data.rfind("\n") + 1]
    return complete.splitlines(), offset + len(complete.encode("utf-8"))

"""A gzip-compressed cpio archive in the kernel's "newc" format, owned by root.

Written here rather than with cpio(1) so that the archive is reproducible
(fixed order and times) and can hold device nodes without privileges.
"""

from __future__ import annotations

import gzip
import os
import stat
from pathlib import Path
from typing import Protocol

_TRAILER = "TRAILER!!!"


class Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


class Archive:
    def __init__(self, out: Writable) -> None:
        self._out = out
        self._inode = 0

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)):
        self._inode += 1
        encoded = name.encode() + b"\0"
        fields = [self._inode, mode, 0, 0, 1, 0, len(data), 0, 0, *rdev, len(encoded), 0]
        header = b"070701" + b"".join(b"%08X" % value for value in fields)
        self._out.write(header + encoded + _padding(len(header) + len(encoded)))
        self._out.write(data + _padding(len(data)))

    def directory(self, name: str, mode: int = 0o755) -> None:
        self._entry(name, stat.S_IFDIR | mode)

    def char_device(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def add_tree(self, root: Path) -> None:
        """Everything under `root`, parents before children, symlinks kept as links."""
        for directory, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(dirnames) + sorted(filenames):
                path = Path(directory, name)
                self._add(path, path.relative_to(root).as_posix())

    def _add(self, path: Path, name: str) -> None:
        info = path.lstat()
        permissions = stat.S_IMODE(info.st_mode)
        if stat.S_ISLNK(info.st_mode):
            self._entry(name, stat.S_IFLNK | 0o777, os.readlink(path).encode())
        elif stat.S_ISDIR(info.st_mode):
            self.directory(name, permissions)
        elif stat.S_ISREG(info.st_mode):
            self._entry(name, stat.S_IFREG | permissions, path.read_bytes())
        else:
            raise ValueError(f"{path}: only files, directories and symlinks go into the initrd")

    def close(self) -> None:
        self._entry(_TRAILER, 0)


def _padding(length: int) -> bytes:
    return b"\0" * (-length % 4)


def write(root: Path, destination: Path, devices: dict[str, tuple[int, int]]) -> None:
    """Archive the tree at `root` plus character devices {name: (major, minor)}."""
    with (
        destination.open("wb") as raw,
        gzip.GzipFile(
            filename="",
            fileobj=raw,
            mode="wb",
            compresslevel=9,
            mtime=0,  # no name, no time
        ) as out,
    ):
        archive = Archive(out)
        archive.add_tree(root)
        for name, (major, minor) in devices.items():
            archive.char_device(name, major, minor)
        archive.close()

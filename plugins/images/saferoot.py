"""A directory tree that can only be written from the inside.

Every path is walked one component at a time from an open directory
descriptor with O_NOFOLLOW, so no symlink is ever followed and no `..` or
absolute path is ever accepted: whatever a layer says, nothing it writes can
land outside the root.
"""

from __future__ import annotations

import errno
import os
from collections import OrderedDict

from hypercontainer.errors import UserError

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_OPEN_DIRS = 128

Parts = tuple[str, ...]


def clean(name: str, what: str = "entry") -> Parts:
    """Path components of an archive entry name; refuses absolute paths and `..`."""
    if name.startswith("/"):
        raise UserError(f"{what} {name[:200]!r} has an absolute path")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise UserError(f"{what} {name[:200]!r} contains '..'")
    return parts


def show(parts: Parts) -> str:
    return "/".join(parts)[:200] or "."


class Root:
    """Open directory descriptors below one root, cached, never through a symlink."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.fd = os.open(path, DIR_FLAGS)
        self._dirs: OrderedDict[Parts, int] = OrderedDict()

    def dir(self, parts: Parts, create: bool = True) -> int:
        """Descriptor of the directory at `parts`; missing ones are made (0755) if `create`."""
        if not parts:
            return self.fd
        if parts in self._dirs:
            self._dirs.move_to_end(parts)
            return self._dirs[parts]
        parent = self.dir(parts[:-1], create)
        name = parts[-1]
        try:
            fd = os.open(name, DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise UserError(f"path {show(parts)!r} does not exist") from None
            os.mkdir(name, 0o700, dir_fd=parent)
            fd = os.open(name, DIR_FLAGS, dir_fd=parent)
            os.fchmod(fd, 0o755)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UserError(
                    f"path {show(parts)!r} is a symlink or not a directory; "
                    "refusing to write through it"
                ) from None
            raise
        self._dirs[parts] = fd
        return fd

    def forget(self, parts: Parts) -> None:
        """Drop cached descriptors at and below `parts` (they were removed or replaced)."""
        for cached in [p for p in self._dirs if p[: len(parts)] == parts]:
            os.close(self._dirs.pop(cached))

    def trim(self) -> None:
        """Close the least recently used descriptors; call between entries only."""
        while len(self._dirs) > MAX_OPEN_DIRS:
            _, fd = self._dirs.popitem(last=False)
            os.close(fd)

    def close(self) -> None:
        self.forget(())
        os.close(self.fd)

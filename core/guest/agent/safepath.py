"""Files inside a container's root filesystem, never outside it.

A path is walked one component at a time from a directory descriptor of the
root, as if the root were `/`: ".." stops at the root, a symbolic link is read
and its target followed relative to the root. Every directory is then opened
with O_NOFOLLOW relative to its parent, so a link swapped in while we walk
makes the call fail instead of escaping.
"""

from __future__ import annotations

import errno
import functools
import os
import stat

MAX_LINKS = 40


class PathError(Exception):
    """A path that cannot be used inside the root; the message names the path."""


def _named(function):
    """Report an OSError as a PathError naming the path the caller gave."""

    @functools.wraps(function)
    def wrapper(root: str, path: str, *args, **kwargs):
        try:
            return function(root, path, *args, **kwargs)
        except OSError as exc:
            raise PathError(f"{path}: {exc.strerror or exc}") from None

    return wrapper


def _components(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


class _Walk:
    """Directory descriptors from the root down to the current directory."""

    def __init__(self, root: str) -> None:
        self.fds = [os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)]

    @property
    def cwd(self) -> int:
        return self.fds[-1]

    def up(self) -> None:
        if len(self.fds) > 1:
            os.close(self.fds.pop())

    def to_root(self) -> None:
        while len(self.fds) > 1:
            os.close(self.fds.pop())

    def down(self, name: str) -> None:
        flags = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        self.fds.append(os.open(name, flags, dir_fd=self.cwd))

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def _readlink(name: str, dir_fd: int) -> str | None:
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.ENOENT):  # not a link / not there yet
            return None
        raise


def _walk(root: str, path: str, make_dirs: bool, owner: tuple[int, int] | None):
    """(walk, name): the open parent directory of `path`'s last component, and that name.

    `name` is "" when the path is the root itself. The last component's own
    symbolic links are followed as well.
    """
    walk = _Walk(root)
    pending = _components(path)
    links = 0
    try:
        while pending:
            name = pending.pop(0)
            if name == "..":
                walk.up()
                continue
            target = _readlink(name, walk.cwd)
            if target is not None:
                links += 1
                if links > MAX_LINKS:
                    raise PathError(f"{path}: too many levels of symbolic links")
                if target.startswith("/"):
                    walk.to_root()
                pending = _components(target) + pending
                continue
            if not pending:
                return walk, name
            try:
                walk.down(name)
            except FileNotFoundError:
                if not make_dirs:
                    raise
                os.mkdir(name, 0o755, dir_fd=walk.cwd)
                if owner is not None:
                    os.chown(name, *owner, dir_fd=walk.cwd, follow_symlinks=False)
                walk.down(name)
        return walk, ""
    except BaseException:
        walk.close()
        raise


@_named
def write_file(
    root: str,
    path: str,
    data: bytes,
    mode: int = 0o644,
    owner: tuple[int, int] | None = None,
    append: bool = False,
) -> None:
    """Write `data` to `path` inside `root`, creating missing directories."""
    walk, name = _walk(root, path, make_dirs=True, owner=owner)
    try:
        if not name:
            raise PathError(f"{path}: is a directory")
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
        flags |= os.O_APPEND if append else os.O_TRUNC
        fd = os.open(name, flags, mode, dir_fd=walk.cwd)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise PathError(f"{path}: not a regular file")
            if not append:
                os.fchmod(fd, mode)
                if owner is not None:
                    os.fchown(fd, *owner)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
    finally:
        walk.close()


@_named
def read_file(root: str, path: str, offset: int, length: int) -> tuple[bytes, bool]:
    """Up to `length` bytes of the regular file `path` from `offset`, and whether it ends there."""
    walk, name = _walk(root, path, make_dirs=False, owner=None)
    try:
        if not name:
            raise PathError(f"{path}: is a directory")
        fd = os.open(
            name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=walk.cwd
        )
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise PathError(f"{path}: not a regular file")
            data = os.pread(fd, length, offset)
            return data, offset + len(data) >= info.st_size
        finally:
            os.close(fd)
    finally:
        walk.close()


@_named
def make_dirs(root: str, path: str, owner: tuple[int, int] | None = None) -> None:
    """Create the directory `path` inside `root` (and its parents) if missing."""
    walk, name = _walk(root, path, make_dirs=True, owner=owner)
    try:
        if not name:
            return
        try:
            os.mkdir(name, 0o755, dir_fd=walk.cwd)
        except FileExistsError:
            walk.down(name)  # fails unless it is a directory
            return
        if owner is not None:
            os.chown(name, *owner, dir_fd=walk.cwd, follow_symlinks=False)
    finally:
        walk.close()

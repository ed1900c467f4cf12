"""A full disk, said in the user's terms: which of hyperd's stores has no space left.

A full disk reaches hyperd as an OSError (ENOSPC, or EDQUOT for a quota) wherever
a file is written, or as SQLite's SQLITE_FULL ("database or disk is full"), often
wrapped on its way up (an image layer's "entry 'x': No space left on device").
An operation that writes to a store says it once, as a NoSpace naming the store
and its directory: never errno 28, SQLite's words or an internal error.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import NoSpace

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(error: BaseException | None) -> bool:
    """Whether `error`, or what it was raised from or while handling (a caller may have
    put its own words on it), is a full disk."""
    for link in _chain(error):
        if isinstance(link, OSError) and link.errno in FULL_ERRNOS:
            return True
        if isinstance(link, sqlite3.Error) and _sqlite_code(link) == sqlite3.SQLITE_FULL:
            return True
    return False


def unattributed(error: BaseException) -> NoSpace:
    """A full disk no store said as its own (hyperd's last resort): said as the file
    that could not be written, when the error names one."""
    names = (e.filename for e in _chain(error) if isinstance(e, OSError) and e.filename)
    name = next(names, None)
    return NoSpace(f"no space left on device ({name})" if name else "no space left on device")


def _chain(error: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def no_room_left(path: Path) -> bool:
    """Whether the file system holding `path` has not one block free, not even for root
    (a process that cannot write there may not say why: QEMU's pid file)."""
    try:
        return os.statvfs(path).f_bfree == 0
    except OSError:
        return False


def _sqlite_code(error: sqlite3.Error) -> int | None:
    # the primary result code: an extended one's low byte
    code = getattr(error, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


@contextmanager
def space_on(store: str, path: Path) -> Iterator[None]:
    """Say a full disk met in the block as `no space left on STORE (PATH)`."""
    try:
        yield
    except NoSpace:
        raise
    except Exception as e:
        if not is_disk_full(e):
            raise
        raise NoSpace(f"no space left on {store} ({path})") from e

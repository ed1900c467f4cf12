"""A full disk is recognised however it arrives, and said as the store that is full."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest
from hypercontainer.diskspace import is_disk_full, space_on
from hypercontainer.errors import NoSpace, UserError


def wrapped(error: BaseException) -> UserError:
    """`error` with a caller's own words put on it, as the image unpacker does."""
    try:
        try:
            raise error
        except OSError as e:
            raise UserError(f"layer 1234: entry 'x': {e.strerror}") from None
    except UserError as outer:
        return outer


def sqlite_full(tmp_path: Path) -> sqlite3.Error:
    """SQLite's own SQLITE_FULL: a database that may not grow (max_page_count)."""
    db = sqlite3.connect(tmp_path / "db")
    db.execute("CREATE TABLE t (x)")
    db.execute(f"PRAGMA max_page_count={db.execute('PRAGMA page_count').fetchone()[0]}")
    with pytest.raises(sqlite3.Error) as raised:
        db.execute("INSERT INTO t VALUES (?)", (b"x" * 100_000,))
    return raised.value


def test_a_full_disk_is_seen_raw_wrapped_or_from_sqlite(tmp_path):
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert is_disk_full(wrapped(OSError(errno.ENOSPC, "No space left on device")))
    assert is_disk_full(sqlite_full(tmp_path))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(wrapped(OSError(errno.EIO, "Input/output error")))
    assert not is_disk_full(sqlite3.OperationalError("database is locked"))
    assert not is_disk_full(ValueError("x"))


def test_space_on_names_the_store_and_lets_other_errors_pass(tmp_path):
    with pytest.raises(NoSpace, match=r"^no space left on the image store \(/s/images\)$"):
        with space_on("the image store", Path("/s/images")):
            raise wrapped(OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(NoSpace, match=r"^no space left on the image store \(/s/images\)$"):
        with space_on("hyperd's state root", Path("/s")):  # the innermost store is named
            with space_on("the image store", Path("/s/images")):
                raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(PermissionError):
        with space_on("the image store", Path("/s/images")):
            raise PermissionError(errno.EACCES, "Permission denied")

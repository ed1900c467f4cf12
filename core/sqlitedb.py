"""SQLite as hyperd's stores use it (the state store, the image index): WAL, so
readers never wait for a writer, and write transactions taken at once."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager


def use_wal(db: sqlite3.Connection) -> None:
    """Switch the database to WAL once; another process switching at the same time is fine."""
    if db.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        return
    try:
        db.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError:  # "database is locked": someone else is switching
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            raise


@contextmanager
def write_transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One transaction holding the write lock from its start (BEGIN IMMEDIATE: two
    writers never deadlock upgrading read locks), rolled back on any error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")

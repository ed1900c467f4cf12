"""SQLite as hyperd's stores use it (the state store, the image index): WAL, so
readers never wait for a writer, and write transactions taken at once."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

IDLE_KEPT = 8  # connections kept open for the next operations; more are closed


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


class Connections:
    """Connections to one database, shared by every thread: an operation borrows one
    for its duration and gives it back. hyperd serves each request in a new thread;
    a connection per thread was closed only when the garbage collector got to it (a
    connection is a reference cycle), and SQLite keeps a closed connection's file
    open while others hold the database, so hyperd's open files grew with its age."""

    def __init__(self, path: str, setup: Callable[[sqlite3.Connection], None]) -> None:
        self._path = path
        self._setup = setup
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    @contextmanager
    def use(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._idle.pop() if self._idle else None
        if db is None:
            db = sqlite3.connect(
                self._path, timeout=30, isolation_level=None, check_same_thread=False
            )
            self._setup(db)
        try:
            yield db
        finally:
            if db.in_transaction:  # the operation failed half-way: not for the next one
                db.close()
            else:
                with self._lock:
                    keep = len(self._idle) < IDLE_KEPT
                    if keep:
                        self._idle.append(db)
                if not keep:
                    db.close()

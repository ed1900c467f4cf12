"""What the cni driver has asked CNI for, per pod, in the state database.

A record is written (and committed) *before* CNI ADD runs and deleted only
after DEL succeeded and the namespace is gone: whatever happens in between
(a failing plugin, hyperd killed), the record says what to release, and once
it is gone nothing is released again. Every attachment gets a fresh container
id, so a DEL repeated after a crash can never free an address that CNI has
meanwhile given to another pod. Host ports are checked against every other
record under the same write lock, so two pods never publish the same one.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from hypercontainer.drivers import PortForward
from hypercontainer.sqlitedb import use_wal, write_transaction

from .. import ports

SCHEMA = """CREATE TABLE IF NOT EXISTS cni_attachments (
    pod_id TEXT PRIMARY KEY,
    container_id TEXT NOT NULL UNIQUE,
    netns TEXT NOT NULL UNIQUE,
    ifname TEXT NOT NULL,
    network TEXT NOT NULL,
    config TEXT NOT NULL,
    forwards TEXT NOT NULL,
    created TEXT NOT NULL
)"""


@dataclass(frozen=True)
class Record:
    pod_id: str
    container_id: str  # CNI_CONTAINERID
    netns: str  # name of the pod's namespace under /run/netns
    ifname: str  # CNI_IFNAME
    network: str  # the list's name
    config: str  # the list's text as ADD was given it: DEL gets the same
    forwards: list[PortForward]


class Records:
    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.db_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        db = sqlite3.connect(self.db_path, timeout=60, isolation_level=None)
        try:
            use_wal(db)
            with write_transaction(db):
                db.execute(SCHEMA)
                yield db
        finally:
            db.close()

    def add(self, record: Record) -> None:
        """Record an attachment about to be made; refuses host ports another pod holds."""
        with self._db() as db:
            taken = [
                f for other in _all(db) if other.pod_id != record.pod_id for f in other.forwards
            ]
            ports.check_unique(record.forwards, taken=taken)
            db.execute(
                "INSERT INTO cni_attachments (pod_id, container_id, netns, ifname, network, "
                "config, forwards, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.pod_id,
                    record.container_id,
                    record.netns,
                    record.ifname,
                    record.network,
                    record.config,
                    json.dumps([f.__dict__ for f in record.forwards]),
                    datetime.now(UTC).isoformat(timespec="seconds"),
                ),
            )

    def of(self, pod_id: str) -> Record | None:
        with self._db() as db:
            return next((r for r in _all(db) if r.pod_id == pod_id), None)

    def all(self) -> list[Record]:
        with self._db() as db:
            return _all(db)

    def remove(self, container_id: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM cni_attachments WHERE container_id = ?", (container_id,))


def _all(db: sqlite3.Connection) -> list[Record]:
    rows = db.execute(
        "SELECT pod_id, container_id, netns, ifname, network, config, forwards "
        "FROM cni_attachments ORDER BY rowid"
    )
    return [
        Record(
            pod,
            container,
            netns,
            ifname,
            network,
            config,
            [PortForward(**f) for f in json.loads(forwards)],
        )
        for pod, container, netns, ifname, network, config, forwards in rows
    ]

"""State in SQLite (WAL): pods and containers, one transaction per transition.

Records are stored whole as JSON next to the columns that are looked up or
must stay unique. Every change happens inside `BEGIN IMMEDIATE`, so a
transition is checked against the state it replaces and a crash leaves
either the old record or the new one, never half of each.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from .diskspace import space_on
from .errors import Conflict, NotFound, UserError
from .model import (
    Container,
    ContainerState,
    Pod,
    PodState,
    check_container_transition,
    check_pod_transition,
)
from .sqlitedb import Connections, use_wal, write_transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS pods (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    vm_name TEXT NOT NULL UNIQUE,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    pod_id TEXT NOT NULL REFERENCES pods(id),
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS containers_by_pod ON containers(pod_id);
"""

Record = TypeVar("Record", Pod, Container)


def _setup(db: sqlite3.Connection) -> None:
    use_wal(db)
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._connections = Connections(str(path), _setup)
        with self._transaction() as db:
            for statement in SCHEMA.split(";"):
                db.execute(statement)

    # -- plumbing -----------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # A full disk rolls the transaction back: nothing of the change is kept.
        with (
            space_on("hyperd's state root", self.path.parent),
            self._connections.use() as db,
            write_transaction(db),
        ):
            yield db

    # -- pods ---------------------------------------------------------------

    def add_pod(self, pod: Pod) -> Pod:
        try:
            with self._transaction() as db:
                db.execute(
                    "INSERT INTO pods (id, name, vm_name, record) VALUES (?, ?, ?, ?)",
                    (pod.id, pod.name, pod.vm_name, pod.model_dump_json()),
                )
        except sqlite3.IntegrityError:
            raise Conflict(f"pod {pod.name} already exists") from None
        return pod

    def pods(self) -> list[Pod]:
        with self._connections.use() as db:
            rows = db.execute("SELECT record FROM pods ORDER BY rowid").fetchall()
        return [Pod.model_validate_json(r[0]) for r in rows]

    def pod(self, ref: str) -> Pod:
        """A pod by id or name, or a unique prefix of either."""
        with self._connections.use() as db:
            return self._resolve(db, "pods", "pod", ref, Pod)

    def update_pod(self, pod_id: str, change: Callable[[Pod], None]) -> Pod:
        """Apply `change` to the current record in one transaction."""
        with self._transaction() as db:
            pod = self._resolve(db, "pods", "pod", pod_id, Pod)
            change(pod)
            db.execute("UPDATE pods SET record = ? WHERE id = ?", (pod.model_dump_json(), pod.id))
        return pod

    def transition_pod(self, pod_id: str, state: PodState, **fields) -> Pod:
        def change(pod: Pod) -> None:
            check_pod_transition(pod.name, pod.state, state)
            pod.state = state
            for key, value in fields.items():
                setattr(pod, key, value)

        return self.update_pod(pod_id, change)

    def remove_pod(self, pod_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM containers WHERE pod_id = ?", (pod_id,))
            db.execute("DELETE FROM pods WHERE id = ?", (pod_id,))

    # -- containers ---------------------------------------------------------

    def add_container(self, container: Container) -> Container:
        try:
            with self._transaction() as db:
                self._resolve(db, "pods", "pod", container.pod_id, Pod)
                db.execute(
                    "INSERT INTO containers (id, name, pod_id, record) VALUES (?, ?, ?, ?)",
                    (container.id, container.name, container.pod_id, container.model_dump_json()),
                )
        except sqlite3.IntegrityError:
            raise Conflict(f"container {container.name} already exists") from None
        return container

    def containers(self, pod_id: str | None = None) -> list[Container]:
        with self._connections.use() as db:
            if pod_id is None:
                rows = db.execute("SELECT record FROM containers ORDER BY rowid").fetchall()
            else:
                rows = db.execute(
                    "SELECT record FROM containers WHERE pod_id = ? ORDER BY rowid", (pod_id,)
                ).fetchall()
        return [Container.model_validate_json(r[0]) for r in rows]

    def container(self, ref: str) -> Container:
        with self._connections.use() as db:
            return self._resolve(db, "containers", "container", ref, Container)

    def update_container(self, container_id: str, change: Callable[[Container], None]) -> Container:
        with self._transaction() as db:
            container = self._resolve(db, "containers", "container", container_id, Container)
            change(container)
            db.execute(
                "UPDATE containers SET record = ? WHERE id = ?",
                (container.model_dump_json(), container.id),
            )
        return container

    def transition_container(self, container_id: str, state: ContainerState, **fields) -> Container:
        def change(container: Container) -> None:
            check_container_transition(container.name, container.state, state)
            container.state = state
            for key, value in fields.items():
                setattr(container, key, value)

        return self.update_container(container_id, change)

    def remove_container(self, container_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM containers WHERE id = ?", (container_id,))

    # -- lookup -------------------------------------------------------------

    @staticmethod
    def _resolve(
        db: sqlite3.Connection, table: str, kind: str, ref: str, model: type[Record]
    ) -> Record:
        if not ref:
            raise UserError(f"no {kind} named")
        exact = db.execute(
            f"SELECT record FROM {table} WHERE id = ? OR name = ?", (ref, ref)
        ).fetchall()
        if len(exact) == 1:
            return model.model_validate_json(exact[0][0])
        # A unique prefix of an id or a name, compared exactly (LIKE ignores case).
        rows = db.execute(
            f"SELECT record FROM {table} WHERE substr(id, 1, ?) = ? "
            f"OR substr(name, 1, ?) = ? LIMIT 2",
            (len(ref), ref, len(ref), ref),
        ).fetchall()
        if not rows:
            raise NotFound(f"no such {kind}: {ref}")
        if len(rows) > 1:
            raise UserError(f"{kind} prefix {ref} is ambiguous")
        return model.model_validate_json(rows[0][0])

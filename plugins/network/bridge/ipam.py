"""Address leases and port mappings of the bridge, kept in the state database.

The tables live in the same SQLite file as the core's store, under names of
their own. Every change runs inside `BEGIN IMMEDIATE`, which takes the
database's write lock before reading: two `hyperctl run`s can never both see
an address as free, and the PRIMARY KEY would refuse the second one anyway.
The driver keeps the lock while it changes the host to match, so the host
and the database move together.
"""

from __future__ import annotations

import ipaddress
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from hypercontainer.drivers import PortForward
from hypercontainer.errors import NotFound, UserError

from .. import ports

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS bridge_leases (
        address TEXT PRIMARY KEY,
        pod_id TEXT NOT NULL UNIQUE,
        tap TEXT NOT NULL UNIQUE,
        mac TEXT NOT NULL,
        created TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS bridge_forwards (
        protocol TEXT NOT NULL,
        host_ip TEXT NOT NULL,
        host_port INTEGER NOT NULL,
        pod_id TEXT NOT NULL,
        guest_port INTEGER NOT NULL,
        PRIMARY KEY (protocol, host_ip, host_port)
    )""",
)


@dataclass(frozen=True)
class Lease:
    pod_id: str
    address: ipaddress.IPv4Address
    tap: str
    mac: str


class Subnet:
    """The bridge's network: the gateway takes the first address, pods the rest."""

    def __init__(self, cidr: str) -> None:
        try:
            self.network = ipaddress.IPv4Network(cidr)
        except ValueError as e:
            raise UserError(f"bridge subnet {cidr[:40]!r}: {e}") from None
        if self.network.prefixlen > 30:
            raise UserError(f"bridge subnet {cidr}: too small, needs at least a /30")
        self.gateway = next(self.network.hosts())

    @property
    def gateway_cidr(self) -> str:
        return f"{self.gateway}/{self.network.prefixlen}"

    def cidr_of(self, address: ipaddress.IPv4Address) -> str:
        return f"{address}/{self.network.prefixlen}"

    def candidates(self) -> Iterator[ipaddress.IPv4Address]:
        return (a for a in self.network.hosts() if a != self.gateway)


class Leases:
    """Opens one transaction at a time on the state database."""

    def __init__(self, db_path: Path, subnet: Subnet) -> None:
        self.db_path = db_path
        self.subnet = subnet

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        self.db_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        db = sqlite3.connect(self.db_path, timeout=60, isolation_level=None)
        try:
            _use_wal(db)
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in SCHEMA:
                    db.execute(statement)
                yield Transaction(db, self.subnet)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()


def _use_wal(db: sqlite3.Connection) -> None:
    if db.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        return
    try:
        db.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError:
        # Another process is switching the new file to WAL this very moment (the
        # switch does not wait for locks); WAL is persistent, so it is done for us.
        pass


class Transaction:
    """Reads and changes made under the database's write lock."""

    def __init__(self, db: sqlite3.Connection, subnet: Subnet) -> None:
        self.db = db
        self.subnet = subnet

    # -- leases --------------------------------------------------------------

    def leases(self) -> list[Lease]:
        rows = self.db.execute("SELECT pod_id, address, tap, mac FROM bridge_leases ORDER BY rowid")
        return [_lease(row) for row in rows]

    def lease_of(self, pod_id: str) -> Lease | None:
        row = self.db.execute(
            "SELECT pod_id, address, tap, mac FROM bridge_leases WHERE pod_id = ?", (pod_id,)
        ).fetchone()
        return _lease(row) if row else None

    def allocate(self, pod_id: str, tap: str, mac: str) -> Lease:
        """The pod's lease, taking the lowest free address if it has none yet."""
        existing = self.lease_of(pod_id)
        if existing:
            return existing
        self._check_subnet()
        taken = {row[0] for row in self.db.execute("SELECT address FROM bridge_leases")}
        address = next((a for a in self.subnet.candidates() if str(a) not in taken), None)
        if address is None:
            raise UserError(f"bridge subnet {self.subnet.network} has no free address left")
        return self.insert(Lease(pod_id, address, tap, mac))

    def insert(self, lease: Lease) -> Lease:
        try:
            self.db.execute(
                "INSERT INTO bridge_leases (address, pod_id, tap, mac, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    str(lease.address),
                    lease.pod_id,
                    lease.tap,
                    lease.mac,
                    datetime.now(UTC).isoformat(),
                ),
            )
        except sqlite3.IntegrityError:
            raise UserError(
                f"bridge address {lease.address} or tap {lease.tap} is already leased"
            ) from None
        return lease

    def release(self, pod_id: str) -> Lease | None:
        """Forget the pod's lease and its port mappings; None if it had none."""
        lease = self.lease_of(pod_id)
        self.db.execute("DELETE FROM bridge_forwards WHERE pod_id = ?", (pod_id,))
        self.db.execute("DELETE FROM bridge_leases WHERE pod_id = ?", (pod_id,))
        return lease

    def _check_subnet(self) -> None:
        # Leases from another subnet mean the configuration changed under running pods.
        for lease in self.leases():
            if lease.address not in self.subnet.network:
                raise UserError(
                    f"pod {lease.pod_id} holds {lease.address}, outside the configured bridge "
                    f"subnet {self.subnet.network}: remove the bridge's pods before changing it"
                )

    # -- port mappings -------------------------------------------------------

    def forwards(self, pod_id: str | None = None) -> list[tuple[str, PortForward]]:
        """(pod_id, forward) pairs, of one pod or of all."""
        query = "SELECT pod_id, protocol, host_ip, host_port, guest_port FROM bridge_forwards"
        args: tuple = ()
        if pod_id is not None:
            query, args = query + " WHERE pod_id = ?", (pod_id,)
        rows = self.db.execute(query + " ORDER BY protocol, host_port, host_ip", args)
        return [(row[0], PortForward(*row[1:])) for row in rows]

    def add_forwards(self, pod_id: str, forwards: list[PortForward]) -> list[PortForward]:
        """Record new mappings of a leased pod; refuses a host port already mapped.

        Returns those not recorded before (adding one twice is not an error).
        """
        if not self.lease_of(pod_id):
            raise NotFound(f"pod {pod_id} has no address on the bridge")
        mine = [f for owner, f in self.forwards() if owner == pod_id]
        others = [f for owner, f in self.forwards() if owner != pod_id]
        new = list(dict.fromkeys(f for f in forwards if f not in mine))
        ports.check_unique(new, taken=others + mine)
        self.db.executemany(
            "INSERT INTO bridge_forwards (protocol, host_ip, host_port, pod_id, guest_port) "
            "VALUES (?, ?, ?, ?, ?)",
            [(f.protocol, f.host_ip, f.host_port, pod_id, f.guest_port) for f in new],
        )
        return new

    def remove_forward(self, pod_id: str, forward: PortForward) -> None:
        deleted = self.db.execute(
            "DELETE FROM bridge_forwards WHERE pod_id = ? AND protocol = ? AND host_ip = ? "
            "AND host_port = ? AND guest_port = ?",
            (pod_id, forward.protocol, forward.host_ip, forward.host_port, forward.guest_port),
        ).rowcount
        if not deleted:
            raise NotFound(f"pod {pod_id} has no port mapping {forward}")


def _lease(row: tuple) -> Lease:
    pod_id, address, tap, mac = row
    return Lease(pod_id, ipaddress.IPv4Address(address), tap, mac)

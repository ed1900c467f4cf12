"""The bridge network: a tap per pod on a Linux bridge, NAT and port mappings.

Each change holds the database's write lock from the moment it reads the
leases until the host matches them again, so concurrent `run`s and `rm`s
take turns and the host never disagrees with the database for long. The
host-facing steps (bridge, taps, nft table) are all idempotent, which is
what lets adopt() simply redo them after a restart.
"""

from __future__ import annotations

import ipaddress
import os

from hypercontainer.drivers import Cap, Network, NetworkAttachment, PortForward
from hypercontainer.errors import DriverError, UserError
from hypercontainer.log import get_logger
from hypercontainer.names import tap_name

from .. import hostports, ports
from ..mac import mac_for
from ..resolv import nameservers
from . import link, nft
from .ipam import Lease, Leases, Subnet, Transaction
from .settings import BridgeSettings


class BridgeNetwork(Network):
    name = "bridge"
    Settings = BridgeSettings
    settings: BridgeSettings
    requires = frozenset({Cap.ROOT, Cap.TAP_NETWORK})

    def __init__(self, config) -> None:
        super().__init__(config)
        self.bridge = link.check_name(self.settings.name)
        self.subnet = Subnet(self.settings.subnet)
        self.default_host_ip = ports.check_host_ip(self.settings.host_ip)
        self.leases = Leases(config.database_path, self.subnet)

    # -- the Network interface ------------------------------------------------

    def attach(self, pod_id: str, forwards: list[PortForward]) -> NetworkAttachment:
        _require_root()
        forwards = ports.normalise(forwards, self.default_host_ip)
        ports.check_unique(forwards)
        log = get_logger(pod_id=pod_id)
        try:
            with self.leases.transaction() as txn:
                lease = txn.allocate(pod_id, tap_name(pod_id), mac_for(pod_id))
                hostports.check_free(txn.add_forwards(pod_id, forwards))
                self._realise(txn)
                link.ensure_tap(lease.tap, self.bridge)
        except BaseException:
            self._forget_failed(pod_id)
            raise
        log.info("bridge attach", address=str(lease.address), tap=lease.tap, forwards=len(forwards))
        return self._attachment(lease)

    def detach(self, pod_id: str, attachment: NetworkAttachment) -> None:
        _require_root()
        with self.leases.transaction() as txn:
            lease = txn.release(pod_id)
            link.delete(lease.tap if lease else attachment.tap or tap_name(pod_id))
            self._realise(txn)
        get_logger(pod_id=pod_id).info("bridge detach", released=bool(lease))

    def adopt(self, pod_id: str, attachment: NetworkAttachment) -> None:
        """Redo the host side of a pod the database knows (after a restart or reboot)."""
        _require_root()
        with self.leases.transaction() as txn:
            lease = txn.lease_of(pod_id) or self._relearn(txn, pod_id, attachment)
            self._realise(txn)
            if link.ensure_tap(lease.tap, self.bridge):
                get_logger(pod_id=pod_id).warning("bridge tap re-created", tap=lease.tap)

    def add_forward(
        self, pod_id: str, attachment: NetworkAttachment, fwd: PortForward
    ) -> PortForward:
        _require_root()
        (fwd,) = ports.normalise([fwd], self.default_host_ip)
        with self.leases.transaction() as txn:
            hostports.check_free(txn.add_forwards(pod_id, [fwd]))
            self._realise(txn)
        return fwd

    def remove_forward(
        self, pod_id: str, attachment: NetworkAttachment, fwd: PortForward
    ) -> PortForward:
        _require_root()
        (fwd,) = ports.normalise([fwd], self.default_host_ip)
        with self.leases.transaction() as txn:
            txn.remove_forward(pod_id, fwd)
            self._realise(txn)
        return fwd

    def forwards(self, pod_id: str, attachment: NetworkAttachment) -> list[PortForward]:
        with self.leases.transaction() as txn:
            return [f for _, f in txn.forwards(pod_id)]

    def describe(self) -> dict:
        return {
            **super().describe(),
            "bridge": self.bridge,
            "subnet": str(self.subnet.network),
            "gateway": str(self.subnet.gateway),
            "host_ip": self.default_host_ip,
        }

    # -- making the host match the database ----------------------------------

    def _realise(self, txn: Transaction) -> None:
        """Bridge and nft table for the current leases; both gone when there are none."""
        leases = txn.leases()
        if not leases:
            nft.delete_table()
            link.delete(self.bridge)
            return
        link.ensure_bridge(self.bridge, self.subnet.gateway_cidr)
        link.enable_routing(self.bridge)
        forwards: dict[str, list[PortForward]] = {}
        for owner, forward in txn.forwards():
            forwards.setdefault(owner, []).append(forward)
        pods = [
            nft.PodRules(
                lease.pod_id, lease.tap, str(lease.address), forwards.get(lease.pod_id, [])
            )
            for lease in leases
        ]
        nft.apply(nft.render(self.bridge, str(self.subnet.network), pods))

    def _forget_failed(self, pod_id: str) -> None:
        """After a failed attach: drop a tap nobody leases and re-sync the host."""
        try:
            with self.leases.transaction() as txn:
                if txn.lease_of(pod_id) is None:
                    link.delete(tap_name(pod_id))
                self._realise(txn)
        except (DriverError, OSError) as e:
            get_logger(pod_id=pod_id).warning("bridge cleanup after failed attach", error=str(e))

    def _relearn(self, txn: Transaction, pod_id: str, attachment: NetworkAttachment) -> Lease:
        """Take back a lease the database lost, from the attachment the runtime kept."""
        if attachment.kind != "tap" or not attachment.address or not attachment.tap:
            raise UserError(f"pod {pod_id} has no bridge attachment to adopt")
        address = attachment.address.split("/")[0]
        try:
            ip = ipaddress.IPv4Address(address)
        except ValueError:
            raise UserError(f"pod {pod_id}: bad bridge address {address[:40]!r}") from None
        if ip not in self.subnet.network or ip == self.subnet.gateway:
            raise UserError(f"pod {pod_id}: {ip} is not a pod address of {self.subnet.network}")
        return txn.insert(
            Lease(pod_id, ip, link.check_name(attachment.tap, "tap name"), attachment.mac)
        )

    def _attachment(self, lease: Lease) -> NetworkAttachment:
        return NetworkAttachment(
            kind="tap",
            mac=lease.mac,
            tap=lease.tap,
            address=self.subnet.cidr_of(lease.address),
            gateway=str(self.subnet.gateway),
            dns=nameservers(),
            requires=frozenset({Cap.TAP_NETWORK}),
        )


def _require_root() -> None:
    if os.geteuid() != 0:
        raise UserError('the bridge network needs root (use network = "user" otherwise)')

"""The `cni` network: each pod gets a named network namespace that a CNI network
configuration list fills (CNI ADD), and its VM joins that namespace
(core/netjoin.py: a tap mirrored to the interface with tc).

The order of attach: record what is about to be allocated (records.py), make
the namespace, ADD, cache the result (libcni's place and format), join. Each
later step failing undoes the earlier ones, DEL included. detach (rm, a failed
start) and recover (what a killed hyperd left) release a record the same way:
leave, DEL, delete the namespace and cache entry, and only then the record.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import threading
from collections.abc import Collection
from typing import Any

from hypercontainer import netjoin
from hypercontainer.drivers import Cap, Network, NetworkAttachment, PortForward
from hypercontainer.errors import DriverError, HyperError, UserError
from hypercontainer.log import get_logger

from .. import hostports, ports
from ..resolv import nameservers
from . import conflist, operations, podns
from . import result as results
from .cache import ResultCache
from .conflist import NetworkList
from .plugin import Invocation
from .records import Record, Records
from .settings import CniSettings

IFNAME = "eth0"  # CNI_IFNAME: what the pod's interface is called inside its namespace


# portmap is given the pod's ports in ADD only: a running pod's cannot change.
PORTS_FIXED = (
    "the cni network publishes ports when the pod starts: CNI cannot change them on a running pod"
)


class CniNetwork(Network):
    name = "cni"
    Settings = CniSettings
    settings: CniSettings
    requires = frozenset({Cap.ROOT, Cap.TAP_NETWORK, Cap.NETNS_TAP})

    def __init__(self, config) -> None:
        super().__init__(config)
        settings = self.settings
        self.conf_dir = settings.conf_dir
        self.network_name = settings.network
        self.bin_path = settings.bin_dir
        if not all(d.startswith("/") for d in self.bin_path.split(":")):
            raise UserError(
                f"cni.bin_dir {self.bin_path[:80]!r}: absolute directories, separated by ':'"
            )
        self.default_host_ip = ports.check_host_ip(settings.host_ip)
        self.cache = ResultCache(settings.cache_dir)
        self.records = Records(config.database_path)
        self.data_dir = config.state_root / "cni" / "networks"  # host-local's, by default
        self._default_lock = threading.Lock()

    # -- the Network interface ------------------------------------------------

    def attach(self, pod_id: str, forwards: list[PortForward]) -> NetworkAttachment:
        _require_root()
        forwards = ports.normalise(forwards, self.default_host_ip)
        ports.check_unique(forwards)
        network = self._network()
        if leftover := self.records.of(pod_id):  # an attach hyperd never recorded as done
            self._release(leftover)
        container_id = secrets.token_hex(16)
        record = Record(
            pod_id,
            container_id,
            f"hc-{container_id[:12]}",
            IFNAME,
            network.name,
            network.text,
            forwards,
        )
        self.records.add(record)
        log = get_logger(pod_id=pod_id)
        try:
            hostports.check_free(forwards)
            podns.create(record.netns)
            invocation = self._invocation(record)
            outcome = operations.add(network, invocation, _capabilities(forwards))
            self.cache.write(
                network.name,
                container_id,
                IFNAME,
                invocation.netns,
                network.text,
                _capabilities(forwards),
                outcome,
            )
            addressing = results.read(outcome, IFNAME, network.name)
            attachment = netjoin.join(pod_id, invocation.netns, interface=IFNAME)
            _check_agrees(addressing, attachment, network.name)
        except BaseException:
            try:
                self._release(record)
            except HyperError as e:  # the record stays: the next hyperd start retries
                log.error("CNI release after a failed attach failed", error=str(e))
            raise
        attachment.dns = addressing.dns or nameservers()
        log.info(
            "cni attach",
            network=network.name,
            address=attachment.address,
            netns=record.netns,
            forwards=len(forwards),
        )
        return attachment

    def detach(self, pod_id: str, attachment: NetworkAttachment) -> None:
        _require_root()
        if record := self.records.of(pod_id):
            self._release(record)

    def adopt(self, pod_id: str, attachment: NetworkAttachment) -> None:
        """After a restart: the namespace and its mirror outlived hyperd; CHECK that CNI
        still agrees (cheap), and say so if not."""
        record = self.records.of(pod_id)
        log = get_logger(pod_id=pod_id)
        if record is None:
            log.warning("cni: no record of this pod's network; rm will not release CNI state")
            return
        cached = self.cache.result(record.network, record.container_id, record.ifname)
        if cached is None:
            return
        network = conflist.parse(record.config, f"(recorded for pod {pod_id})")
        # Debian's portmap 1.1.1 fails CHECK for a pod without IPv6 (upstream
        # containernetworking/plugins#819), so a failure is reported, never acted on.
        for failure in operations.check(
            network, self._invocation(record), _capabilities(record.forwards), cached
        ):
            log.warning("CNI CHECK failed for an adopted pod", error=str(failure))

    def recover(self, attached: Collection[str]) -> None:
        for record in self.records.all():
            if record.pod_id in attached:
                continue
            log = get_logger(pod_id=record.pod_id)
            log.warning(
                "releasing the CNI network of a pod hyperd never finished starting",
                netns=record.netns,
            )
            try:
                self._release(record)
            except HyperError as e:
                log.error("CNI release failed; retried at the next start", error=str(e))

    def add_forward(
        self, pod_id: str, attachment: NetworkAttachment, fwd: PortForward
    ) -> PortForward:
        raise UserError(PORTS_FIXED)

    def remove_forward(
        self, pod_id: str, attachment: NetworkAttachment, fwd: PortForward
    ) -> PortForward:
        raise UserError(PORTS_FIXED)

    def forwards(self, pod_id: str, attachment: NetworkAttachment) -> list[PortForward]:
        record = self.records.of(pod_id)
        return list(record.forwards) if record else []

    def describe(self) -> dict[str, Any]:
        try:
            found = conflist.find(self.conf_dir, self.network_name)
            source = found.source if found else "(the default, written at the first pod)"
        except UserError as e:  # shown, so that `hyperctl info` says what a start would
            source = f"error: {e}"
        return {
            **super().describe(),
            "network": self.network_name,
            "conf_dir": str(self.conf_dir),
            "conflist": source,
            "bin_dir": self.bin_path,
            "cache_dir": str(self.cache.cache_dir),
            "host_ip": self.default_host_ip,
        }

    # -- helpers -----------------------------------------------------------------

    def _network(self) -> NetworkList:
        """The configured list; the default one is written if it is the one asked for."""
        with self._default_lock:
            found = conflist.find(self.conf_dir, self.network_name)
            if found:
                return found
            if self.network_name == conflist.DEFAULT_NETWORK:
                return conflist.write_default(self.conf_dir, self.network_name, self.data_dir)
        offered = ", ".join(conflist.names(self.conf_dir)) or "none"
        raise UserError(
            f"no CNI network {self.network_name!r} in {self.conf_dir} (networks there: {offered})"
        )

    def _invocation(self, record: Record) -> Invocation:
        return Invocation(
            record.container_id, str(podns.path(record.netns)), record.ifname, self.bin_path
        )

    def _release(self, record: Record) -> None:
        """Undo one attachment, whatever part of it exists; the record goes last."""
        invocation = self._invocation(record)
        netjoin.leave(record.pod_id, invocation.netns)
        cached = self.cache.result(record.network, record.container_id, record.ifname)
        network = conflist.parse(record.config, f"(recorded for pod {record.pod_id})")
        operations.delete(network, invocation, _capabilities(record.forwards), cached)
        podns.delete(record.netns)
        self.cache.remove(record.network, record.container_id, record.ifname)
        self.records.remove(record.container_id)
        get_logger(pod_id=record.pod_id).info("cni released", netns=record.netns)


def _capabilities(forwards: list[PortForward]) -> dict[str, Any]:
    """CNI's portMappings capability; an empty hostIP is every address."""
    if not forwards:
        return {}
    return {
        "portMappings": [
            {
                "hostPort": f.host_port,
                "containerPort": f.guest_port,
                "protocol": f.protocol,
                "hostIP": "" if f.host_ip == ports.ANY_HOST_IP else f.host_ip,
            }
            for f in forwards
        ]
    }


def _check_agrees(
    addressing: results.PodAddressing, attachment: NetworkAttachment, network: str
) -> None:
    """The namespace must hold what the result says: the VM takes the namespace's state."""
    held = {ipaddress.ip_interface(a) for a in attachment.addresses}
    missing = [a for a in addressing.addresses if ipaddress.ip_interface(a) not in held]
    if missing:
        raise DriverError(
            f"CNI network {network}: {IFNAME} lacks {', '.join(missing)} that its result reports"
        )


def _require_root() -> None:
    if os.geteuid() != 0:
        raise UserError('the cni network needs root (use network = "user" otherwise)')

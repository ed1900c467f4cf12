"""Checks shared by the network drivers on the port forwards they are given.

Ranges from the pod file are expanded by the spec (`PortMapping.host_ports`)
before a driver sees them: here every forward is one port. An empty host
address means "the driver's default" (user: 127.0.0.1, bridge: every local
address; both configurable).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from hypercontainer.drivers import PortForward
from hypercontainer.errors import UserError

PROTOCOLS = ("tcp", "udp")
ANY_HOST_IP = "0.0.0.0"
# A pod with more forwards than this is almost certainly a typo ("1-65535"),
# and each one costs a listening socket or a firewall rule.
MAX_FORWARDS = 1024


def check_protocol(protocol: str) -> str:
    name = str(protocol).strip().lower() or "tcp"
    if name not in PROTOCOLS:
        raise UserError(f"protocol {str(protocol)[:20]!r}: expected tcp or udp")
    return name


def check_host_ip(host_ip: str) -> str:
    """'' (driver default) or a dotted IPv4 address."""
    if host_ip == "":
        return host_ip
    try:
        return str(ipaddress.IPv4Address(host_ip))
    except ValueError:
        raise UserError(f"host address {host_ip[:40]!r}: expected an IPv4 address") from None


def overlap(a: PortForward, b: PortForward) -> bool:
    """Whether two forwards would claim the same host socket."""
    if (a.protocol, a.host_port) != (b.protocol, b.host_port):
        return False
    return a.host_ip == b.host_ip or ANY_HOST_IP in (a.host_ip, b.host_ip)


def check_unique(forwards: Iterable[PortForward], taken: Iterable[PortForward] = ()) -> None:
    """Refuse a host port claimed twice, among `forwards` or against `taken`."""
    seen = list(taken)
    for count, forward in enumerate(forwards, 1):
        if count > MAX_FORWARDS:
            raise UserError(f"at most {MAX_FORWARDS} port mappings per pod")
        for other in seen:
            if overlap(forward, other):
                raise UserError(f"host port {forward.host_port}/{forward.protocol} is mapped twice")
        seen.append(forward)


def normalise(forwards: Iterable[PortForward], default_host_ip: str) -> list[PortForward]:
    """Validate forwards from any source and fill in the driver's default host address."""
    result = []
    for f in forwards:
        for side, port in (("host port", f.host_port), ("container port", f.guest_port)):
            if not isinstance(port, int) or not 1 <= port <= 65535:
                raise UserError(f"{side} {str(port)[:20]}: ports are 1-65535")
        host_ip = check_host_ip(f.host_ip) or default_host_ip
        result.append(PortForward(check_protocol(f.protocol), host_ip, f.host_port, f.guest_port))
    return result

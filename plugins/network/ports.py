"""Port mappings as users write them, expanded into `PortForward` lists.

One side of a mapping is a port ("8080") or an inclusive range ("3000-3010").
Ranges map pairwise, so a host range needs a guest range of the same length.
An empty host address means "the network driver's default" (the user driver
uses 127.0.0.1, the bridge driver every local address; both configurable).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from hypercontainer.drivers import PortForward
from hypercontainer.errors import UserError

PROTOCOLS = ("tcp", "udp")
ANY_HOST_IP = "0.0.0.0"
# A pod with more forwards than this is almost certainly a typo ("1-65535"),
# and each one costs a listening socket or a firewall rule.
MAX_FORWARDS = 1024

_SIDE = re.compile(r"(\d{1,5})(?:-(\d{1,5}))?")


def parse_range(text: str | int, side: str = "port") -> range:
    """'3000-3010' -> range(3000, 3011); '8080' or 8080 -> range(8080, 8081)."""
    match = _SIDE.fullmatch(str(text).strip())
    if not match:
        raise UserError(f"{side} {str(text)[:40]!r}: expected a port or a range like 3000-3010")
    first = int(match[1])
    last = int(match[2] or first)
    for port in (first, last):
        if not 1 <= port <= 65535:
            raise UserError(f"{side} {port}: ports are 1-65535")
    if last < first:
        raise UserError(f"{side} {text}: range ends before it starts")
    return range(first, last + 1)


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


def expand(
    host: str | int, guest: str | int, protocol: str = "tcp", host_ip: str = ""
) -> list[PortForward]:
    """One mapping, ranges included, as one PortForward per port."""
    host_ports = parse_range(host, "host port")
    guest_ports = parse_range(guest, "container port")
    if len(host_ports) != len(guest_ports):
        raise UserError(
            f"port range mismatch: host {host} has {len(host_ports)} ports, "
            f"container {guest} has {len(guest_ports)}"
        )
    if len(host_ports) > MAX_FORWARDS:
        raise UserError(f"host port {host}: at most {MAX_FORWARDS} ports per pod")
    protocol = check_protocol(protocol)
    host_ip = check_host_ip(host_ip)
    return [
        PortForward(protocol, host_ip, h, g) for h, g in zip(host_ports, guest_ports, strict=True)
    ]


def parse_publish(text: str) -> list[PortForward]:
    """A `--publish` value.

    Accepted: HOST:CONTAINER, IP:HOST:CONTAINER, either with a /tcp or /udp
    suffix, and the original hyperctl's PROTO:HOST:CONTAINER. Each port may be
    a range.
    """
    spec = text.strip()
    if len(spec) > 80:
        raise UserError(f"--publish {spec[:40]!r}...: too long")
    protocol = ""
    if "/" in spec:
        spec, protocol = spec.rsplit("/", 1)
    parts = spec.split(":")
    host_ip = ""
    if len(parts) == 3 and parts[0].lower() in PROTOCOLS:
        if protocol and protocol.lower() != parts[0].lower():
            raise UserError(f"--publish {text!r}: two different protocols")
        protocol, parts = parts[0], parts[1:]
    elif len(parts) == 3:
        host_ip, parts = parts[0], parts[1:]
    if len(parts) != 2:
        raise UserError(f"--publish {text!r}: expected [IP:]HOST:CONTAINER[/tcp|/udp]")
    return expand(parts[0], parts[1], protocol or "tcp", host_ip)


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

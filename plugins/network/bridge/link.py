"""The bridge and the pods' taps, made with iproute2; every call is idempotent.

Everything here acts on the network namespace of the calling process, which
is how the tests keep it away from the machine's own network.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

from hypercontainer.errors import DriverError, UserError

from ..iproute import ip

# What the kernel accepts as an interface name (dev_valid_name), kept to plain characters.
_IFNAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")
PROC_SYS = Path("/proc/sys/net/ipv4")


def check_name(name: str, what: str = "bridge name") -> str:
    if not _IFNAME.fullmatch(name) or name in (".", ".."):
        raise UserError(f"{what} {name[:40]!r}: 1-15 letters, digits, '_', '.' or '-'")
    return name


def exists(name: str) -> bool:
    # if_nametoindex asks the kernel through a socket, so it answers for this namespace.
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def addresses(name: str) -> list[str]:
    """The IPv4 addresses of a device, as 'a.b.c.d/prefix'."""
    data = json.loads(ip("-j", "-4", "addr", "show", "dev", name) or "[]")
    return [f"{a['local']}/{a['prefixlen']}" for dev in data for a in dev.get("addr_info", [])]


def ensure_bridge(name: str, gateway_cidr: str) -> None:
    """The bridge exists, is up and holds the gateway address."""
    if not exists(name):
        ip("link", "add", name, "type", "bridge")
    if gateway_cidr not in addresses(name):
        ip("addr", "add", gateway_cidr, "dev", name)
    ip("link", "set", name, "up")


def ensure_tap(tap: str, bridge: str) -> bool:
    """A persistent tap on the bridge, ready for the VMM to open. True if it was created."""
    created = not exists(tap)
    if created:
        ip("tuntap", "add", "dev", tap, "mode", "tap")
    ip("link", "set", tap, "master", bridge, "up")
    return created


def delete(name: str) -> None:
    if exists(name):
        ip("link", "del", name)


def set_sysctl(relative: str, value: str) -> None:
    """Write /proc/sys/net/ipv4/<relative> (per network namespace) if it differs."""
    path = PROC_SYS / relative
    try:
        if path.read_text().strip() != value:
            path.write_text(value + "\n")
    except OSError as e:
        raise DriverError(f"cannot set {path} to {value}: {e.strerror}") from None


def enable_routing(bridge: str) -> None:
    """Let the host route between the bridge and the outside.

    ip_forward is global to the namespace and left on when the last pod goes
    (something else may rely on it by then); route_localnet belongs to the
    bridge and vanishes with it: it lets 127.0.0.1:PORT reach a pod once DNAT
    has rewritten the destination.
    """
    set_sysctl("ip_forward", "1")
    set_sysctl(f"conf/{bridge}/route_localnet", "1")

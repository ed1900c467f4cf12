"""The DNS servers a pod can use when its network names none: the host's, unless only local."""

from __future__ import annotations

import ipaddress
from pathlib import Path

MAX_SERVERS = 3  # what a resolver reads from resolv.conf
RESOLV_CONF = Path("/etc/resolv.conf")


def nameservers(resolv_conf: Path = RESOLV_CONF) -> list[str]:
    """IPv4 name servers of the host, skipping loopback ones the guest cannot reach."""
    try:
        text = resolv_conf.read_text(errors="replace")
    except OSError:
        return []
    servers = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 2 or words[0] != "nameserver":
            continue
        try:
            address = ipaddress.IPv4Address(words[1])
        except ValueError:
            continue  # IPv6: the bridge is IPv4 only
        if not address.is_loopback and str(address) not in servers:
            servers.append(str(address))
    return servers[:MAX_SERVERS]

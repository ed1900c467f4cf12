"""What a CNI result (spec 1.0.0, or 0.3.x/0.4.0 with their "version" fields) says
about the pod: the addresses on its interface in the namespace, and DNS."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from hypercontainer.errors import DriverError


@dataclass(frozen=True)
class PodAddressing:
    addresses: list[str]  # "10.123.0.2/16", as the result gives them
    dns: list[str] = field(default_factory=list)


def read(result: dict[str, Any], ifname: str, network: str) -> PodAddressing:
    """The addresses the result puts on `ifname` inside the sandbox; refuses none at all."""
    found = result.get("interfaces")
    interfaces: list[Any] = found if isinstance(found, list) else []
    addresses = []
    for ip in result.get("ips") or []:
        if not isinstance(ip, dict) or not isinstance(ip.get("address"), str):
            continue
        index = ip.get("interface")
        if isinstance(index, int) and 0 <= index < len(interfaces):
            owner = interfaces[index] if isinstance(interfaces[index], dict) else {}
            if owner.get("name") != ifname or not owner.get("sandbox"):
                continue  # an address of a host-side device (e.g. the bridge's)
        try:
            addresses.append(str(ipaddress.ip_interface(ip["address"])))
        except ValueError:
            raise DriverError(
                f"CNI network {network}: bad address {ip['address'][:60]!r} in the result"
            ) from None
    if not addresses:
        raise DriverError(f"CNI network {network} gave the pod no address")
    given = result.get("dns")
    dns: dict[str, Any] = given if isinstance(given, dict) else {}
    servers = [s for s in dns.get("nameservers") or [] if isinstance(s, str) and _is_ip(s)]
    return PodAddressing(addresses, servers)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True

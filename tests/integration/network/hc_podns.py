"""A network namespace configured the way CNI leaves one, for the pod's VM to join.

`peer` plays the node's side (CNI's bridge, or the gateway) at .1; the pod's
namespace holds eth0, the other end of a veth, with an address, routes and
an MTU of its own: everything a join must carry over to the guest.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from hc_netns import NetNs

MTU = 1400


@dataclass
class PodNamespace:
    pod: NetNs
    peer: NetNs
    subnet: str  # e.g. "10.57.3", the /24 both ends are on

    @property
    def address(self) -> str:
        return f"{self.subnet}.5"

    @property
    def gateway(self) -> str:
        return f"{self.subnet}.1"

    @property
    def address6(self) -> str:
        return f"fd00:{self.subnet.replace('.', ':')}::5"

    def mac(self) -> str:
        return self.pod.links()["eth0"]["address"]

    def state(self) -> dict:
        """What the namespace's maker set up: a join and leave must leave it as it was."""
        return {
            "links": {
                name: (
                    link.get("linkinfo", {}).get("info_kind", ""),
                    link["mtu"],
                    link["address"],
                    link["operstate"],
                )
                for name, link in self.pod.links().items()
            },
            "addresses": sorted(  # (without flags such as "tentative", which tick over)
                (device["ifname"], info["local"], info["prefixlen"], info["scope"])
                for device in json.loads(self.pod.sh("ip", "-j", "addr"))
                for info in device["addr_info"]
            ),
            "routes": self.pod.sh("ip", "route") + self.pod.sh("ip", "-6", "route"),
            "qdiscs": json.loads(self.pod.sh("tc", "-j", "qdisc", "show", "dev", "eth0")),
        }


def configured(make) -> PodNamespace:
    """Two fresh namespaces (from the `netns` fixture's factory), wired as described above."""
    peer, pod = make("-cnipeer"), make("-cnipod")
    subnet = f"10.{secrets.randbelow(200) + 20}.{secrets.randbelow(250)}"
    peer.sh("ip", "link", "add", "veth0", "type", "veth", "peer", "name", "eth0", "netns", pod.name)
    peer.sh("ip", "addr", "add", f"{subnet}.1/24", "dev", "veth0")
    peer.sh("ip", "link", "set", "veth0", "mtu", str(MTU), "up")
    pod.sh("ip", "link", "set", "eth0", "mtu", str(MTU), "up")
    pod.sh("ip", "addr", "add", f"{subnet}.5/24", "dev", "eth0")
    pod.sh("ip", "route", "add", "default", "via", f"{subnet}.1")
    pod.sh("ip", "route", "add", "10.250.0.0/16", "via", f"{subnet}.1")  # a second route
    namespace = PodNamespace(pod, peer, subnet)
    peer.sh(
        "ip", "addr", "add", namespace.address6.replace("::5", "::1/64"), "dev", "veth0", "nodad"
    )
    pod.sh("ip", "addr", "add", f"{namespace.address6}/64", "dev", "eth0", "nodad")
    return namespace

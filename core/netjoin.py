"""Putting a pod's VM on a network namespace that someone else configured (CNI, CRI).

Kata Containers' "tcfilter" model: the namespace holds one interface (a veth,
usually) with the pod's addresses and routes. A tap is made beside it, and
two tc ingress filters redirect every frame arriving on one of them out of
the other, so the VM behind the tap is, to the network, where that interface
was. The guest's NIC takes the interface's MAC (the bridge and its firewall
already expect it), its addresses, routes and MTU. The interface itself is
left as it was: with all its ingress stolen, the namespace's own stack never
answers for it.

leave() undoes exactly what join() made (the tap and the ingress qdisc) and
nothing else: the namespace and its interface belong to whoever made them.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from typing import Any

from . import netns
from .drivers import Cap, NetworkAttachment
from .errors import DriverError, UserError
from .log import get_logger
from .names import tap_name

INGRESS = "ffff:"
REQUIRES = frozenset({Cap.TAP_NETWORK, Cap.NETNS_TAP})  # of the hypervisor
PREFERRED = "eth0"  # the name CNI and CRI give the pod's interface


def join(pod_id: str, path: str, interface: str | None = None) -> NetworkAttachment:
    """Mirror the namespace's interface (`interface`, or the one there is) to a new tap for
    this pod's VM; describe both."""
    netns.check(path)
    attachment = netns.run_inside(path, _join, tap_name(pod_id), path, interface)
    get_logger(pod_id=pod_id).info(
        "joined network namespace",
        netns=path,
        interface=attachment.interface,
        tap=attachment.tap,
        address=attachment.address,
    )
    return attachment


def leave(pod_id: str, path: str) -> None:
    """Remove the pod's tap and the mirroring from the namespace, if it still exists."""
    if netns.exists(path):
        netns.run_inside(path, _undo, tap_name(pod_id))


# -- inside the namespace ------------------------------------------------------


def _join(tap: str, path: str, interface: str | None) -> NetworkAttachment:
    if tap in _links():  # an earlier join of this pod was cut short: start afresh
        _undo(tap)
    links = _links()
    if interface is not None and interface not in links:
        raise UserError(f"netns {path}: no interface {interface}")
    name = interface or _choose(links, path)
    link = links[name]
    if "UP" not in link.get("flags", []):
        raise UserError(f"netns {path}: interface {name} is down")
    if _ingress_qdisc(name):
        raise UserError(
            f"netns {path}: interface {name} already has an ingress qdisc "
            "(is another pod on this namespace?)"
        )
    addresses = _addresses(name)
    if not addresses:
        raise UserError(f"netns {path}: interface {name} has no address")
    routes = _routes(name)
    try:
        _run("ip", "tuntap", "add", "dev", tap, "mode", "tap", "vnet_hdr")
        _run("ip", "link", "set", "dev", tap, "mtu", str(link["mtu"]), "up")
        for device in (name, tap):
            _run("tc", "qdisc", "add", "dev", device, "ingress")
        for source, target in ((name, tap), (tap, name)):
            _run(
                "tc",
                "filter",
                "add",
                "dev",
                source,
                "parent",
                INGRESS,
                "protocol",
                "all",
                "u32",
                "match",
                "u8",
                "0",
                "0",
                "action",
                "mirred",
                "egress",
                "redirect",
                "dev",
                target,
            )
    except BaseException:
        _undo(tap)
        raise
    ipv4 = [a for a in addresses if ipaddress.ip_interface(a).version == 4]
    return NetworkAttachment(
        kind="tap",
        mac=link["address"],
        tap=tap,
        netns=path,
        interface=name,
        address=(ipv4 or addresses)[0],
        gateway=_default_gateway(routes),
        addresses=addresses,
        routes=routes,
        mtu=int(link["mtu"]),
        requires=REQUIRES,
    )


def _undo(tap: str) -> None:
    """Delete the ingress qdisc of every interface redirecting to `tap`, then the tap."""
    links = _links()
    for name in links:
        if name != tap and _redirects_to(name, tap):
            _run("tc", "qdisc", "del", "dev", name, "ingress")
    if tap in links:
        _run("ip", "link", "del", "dev", tap)


def _choose(links: dict[str, dict], path: str) -> str:
    """The one interface of the namespace (eth0 if there are several)."""
    candidates = [
        name
        for name, link in links.items()
        if link.get("link_type") == "ether"
        and link.get("linkinfo", {}).get("info_kind") != "tun"  # a VM's tap, not the pod's NIC
    ]
    if len(candidates) == 1:
        return candidates[0]
    if PREFERRED in candidates:
        return PREFERRED
    if not candidates:
        raise UserError(
            f"netns {path}: no network interface to join (only "
            f"{', '.join(sorted(links)) or 'nothing'})"
        )
    raise UserError(
        f"netns {path}: {len(candidates)} interfaces ({', '.join(sorted(candidates))})"
        f" and none is {PREFERRED}: a pod joins one"
    )


def _addresses(name: str) -> list[str]:
    data = _json("ip", "-j", "addr", "show", "dev", name)
    return [
        f"{info['local']}/{info['prefixlen']}"
        for device in data
        for info in device.get("addr_info", [])
        if info.get("scope") == "global" and info.get("family") in ("inet", "inet6")
    ]


def _routes(name: str) -> list[dict[str, str]]:
    """The routes through the interface the guest must have too, link-scope ones first.

    Routes the kernel derives from an address (proto kernel) appear in the guest
    by themselves when it takes that address.
    """
    routes = []
    for family, default in (("-4", "0.0.0.0/0"), ("-6", "::/0")):
        for entry in _json("ip", "-j", family, "route", "show", "dev", name):
            if entry.get("protocol") == "kernel" or entry.get("type", "unicast") != "unicast":
                continue
            route = {"dst": default if entry["dst"] == "default" else _cidr(entry["dst"])}
            if entry.get("gateway"):
                route["gateway"] = entry["gateway"]
            routes.append(route)
    return sorted(routes, key=lambda route: "gateway" in route)


def _cidr(destination: str) -> str:
    return str(ipaddress.ip_network(destination, strict=False))


def _default_gateway(routes: list[dict[str, str]]) -> str | None:
    for route in routes:
        if route["dst"] == "0.0.0.0/0" and "gateway" in route:
            return route["gateway"]
    return None


def _ingress_qdisc(name: str) -> bool:
    return any(
        q.get("kind") in ("ingress", "clsact")
        for q in _json("tc", "-j", "qdisc", "show", "dev", name)
    )


def _redirects_to(name: str, tap: str) -> bool:
    if not _ingress_qdisc(name):
        return False
    for entry in _json("tc", "-j", "filter", "show", "dev", name, "ingress"):
        for action in entry.get("options", {}).get("actions", []):
            if action.get("kind") == "mirred" and action.get("to_dev") == tap:
                return True
    return False


def _links() -> dict[str, dict]:
    return {link["ifname"]: link for link in _json("ip", "-d", "-j", "link", "show")}


def _json(*command: str) -> Any:
    return json.loads(_run(*command) or "[]")


def _run(*command: str) -> str:
    try:
        done = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise DriverError(
            f"joining a network namespace needs {command[0]} (iproute2 is not installed)"
        ) from None
    if done.returncode != 0:
        raise DriverError(f"{' '.join(command)}: {done.stderr.strip() or 'failed'}")
    return done.stdout

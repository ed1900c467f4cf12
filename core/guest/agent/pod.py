"""Pod-wide setup: host name, name resolution files, the network interface, sysctls."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import subprocess

from .errors import Failure

HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9-]{1,63})*")
WORD = re.compile(r"[^\s#;]{1,253}")  # a search domain or a resolver option
SYSCTL = re.compile(r"[a-z0-9_]+([./][A-Za-z0-9_-]+)+")
MAC = re.compile(r"([0-9a-f]{2}:){5}[0-9a-f]{2}")
SYS_NET = "/sys/class/net"


class PodNetwork:
    """What containers copy into their /etc: computed once by start_pod."""

    def __init__(self) -> None:
        self.hostname = "localhost"
        self.address: str | None = None  # the pod's IP, without prefix
        self.resolv_conf = ""

    def hosts(self, hostname: str) -> str:
        lines = [
            "127.0.0.1\tlocalhost",
            "::1\tlocalhost ip6-localhost ip6-loopback",
            "fe00::0\tip6-localnet",
            "ff00::0\tip6-mcastprefix",
            "ff02::1\tip6-allnodes",
            "ff02::2\tip6-allrouters",
            f"{self.address or '127.0.1.1'}\t{hostname}",
        ]
        return "\n".join(lines) + "\n"


def check_hostname(name: str) -> str:
    if len(name) > 64 or not HOSTNAME.fullmatch(name):
        raise Failure(f"invalid hostname {name[:80]!r}")
    return name


def resolv_conf(dns: list[str], search: list[str], options: list[str]) -> str:
    lines = []
    for server in dns:
        try:
            lines.append(f"nameserver {ipaddress.ip_address(server)}")
        except ValueError:
            raise Failure(f"invalid DNS server {server[:80]!r}") from None
    for kind, words in (("search", search), ("options", options)):
        for word in words:
            if not WORD.fullmatch(word):
                raise Failure(f"invalid DNS {kind} entry {word[:80]!r}")
        if words:
            lines.append(f"{kind} {' '.join(words)}")
    return "\n".join(lines) + "\n" if lines else ""


def set_hostname(name: str) -> None:
    socket.sethostname(name)


def check_sysctls(sysctl: dict[str, str]) -> None:
    for key, value in sysctl.items():
        if not SYSCTL.fullmatch(key) or ".." in key:
            raise Failure(f"invalid sysctl name {key[:80]!r}")
        if "\n" in value or len(value) > 4096:
            raise Failure(f"invalid value for sysctl {key}")


def apply_sysctls(sysctl: dict[str, str]) -> None:
    check_sysctls(sysctl)
    for key, value in sysctl.items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(path, "w") as file:
                file.write(value)
        except OSError as exc:
            raise Failure(f"sysctl {key}={value}: {exc.strerror}") from None


def configure_interface(
    mac: str,
    address: str,
    gateway: str | None,
    mtu: int | None = None,
    addresses: list[str] | None = None,
    routes: list[dict[str, str]] | None = None,
) -> str:
    """Bring up the pod's NIC with this MAC, MTU, addresses and routes; returns the
    address without its prefix.

    The NIC is the one with that MAC or, if none has it (a VM cloned from a
    template, or a MAC the host chose after boot), the only one there is: it
    takes the MAC. Without `routes`, a `gateway` gives the default route.
    """
    mac = mac.lower()
    if not MAC.fullmatch(mac):
        raise Failure(f"invalid MAC address {mac[:80]!r}")
    wanted = [_interface_address(a) for a in dict.fromkeys([address, *(addresses or [])])]
    table = [_route(r) for r in routes or []]
    try:
        router = ipaddress.ip_address(gateway) if gateway else None
    except ValueError as exc:
        raise Failure(f"invalid gateway: {exc}") from None
    if mtu is not None and not 68 <= mtu <= 65535:
        raise Failure(f"invalid MTU {mtu}: must be 68-65535")
    name = _interface_by_mac(mac)
    if name is None:
        name = _only_interface()
        _ip("link", "set", "dev", name, "down")
        _ip("link", "set", "dev", name, "address", mac)
    if mtu is not None:
        _ip("link", "set", "dev", name, "mtu", str(mtu))
    _ip("link", "set", "dev", name, "up")
    for interface in wanted:
        _ip("addr", "replace", str(interface), "dev", name)
    if not table and router is not None:
        table = [("default", str(router))]
    for destination, via in table:
        _ip("route", "replace", destination, *(("via", via) if via else ()), "dev", name)
    return str(wanted[0].ip)


def _interface_address(address: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    if not isinstance(address, str) or "/" not in address:
        raise Failure(f"interface address {str(address)[:80]!r} needs a prefix length, e.g. /24")
    try:
        return ipaddress.ip_interface(address)
    except ValueError as exc:
        raise Failure(f"invalid interface address: {exc}") from None


def _route(route: dict[str, str]) -> tuple[str, str | None]:
    """("10.0.0.0/8", "10.1.0.1") from {"dst": ..., "gateway": ...}, checked."""
    if not isinstance(route, dict) or set(route) - {"dst", "gateway"}:
        raise Failure(f"invalid route {str(route)[:80]}: expected dst and gateway")
    try:
        destination = ipaddress.ip_network(route.get("dst") or "")
        via = ipaddress.ip_address(route["gateway"]) if route.get("gateway") else None
    except (TypeError, ValueError) as exc:
        raise Failure(f"invalid route {str(route)[:80]}: {exc}") from None
    if via is not None and via.version != destination.version:
        raise Failure(f"invalid route {str(route)[:80]}: gateway of another IP version")
    return str(destination), None if via is None else str(via)


def _interface_by_mac(mac: str) -> str | None:
    for name in _interfaces():
        try:
            with open(os.path.join(SYS_NET, name, "address")) as file:
                if file.read().strip().lower() == mac:
                    return name
        except OSError:
            continue
    return None


def _only_interface() -> str:
    names = [name for name in _interfaces() if name != "lo"]
    if len(names) != 1:
        raise Failure(f"no network interface with the pod's MAC, and {len(names)} others")
    return names[0]


def _interfaces() -> list[str]:
    return sorted(os.listdir(SYS_NET))


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], stdin=subprocess.DEVNULL, capture_output=True)
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip()
        raise Failure(f"ip {' '.join(args)}: {message or 'failed'}")

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


def configure_interface(mac: str, address: str, gateway: str | None) -> str:
    """Bring up the NIC with this MAC address; returns the address without its prefix."""
    mac = mac.lower()
    if not MAC.fullmatch(mac):
        raise Failure(f"invalid MAC address {mac[:80]!r}")
    try:
        interface = ipaddress.ip_interface(address)
        router = ipaddress.ip_address(gateway) if gateway else None
    except ValueError as exc:
        raise Failure(f"invalid interface address: {exc}") from None
    if "/" not in address:
        raise Failure(f"interface address {address!r} needs a prefix length, e.g. /24")
    name = _interface_by_mac(mac)
    _ip("link", "set", "dev", name, "up")
    _ip("addr", "replace", str(interface), "dev", name)
    if router is not None:
        _ip("route", "replace", "default", "via", str(router), "dev", name)
    return str(interface.ip)


def _interface_by_mac(mac: str) -> str:
    root = "/sys/class/net"
    for name in sorted(os.listdir(root)):
        try:
            with open(os.path.join(root, name, "address")) as file:
                if file.read().strip().lower() == mac:
                    return name
        except OSError:
            continue
    raise Failure(f"no network interface with MAC address {mac}")


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], stdin=subprocess.DEVNULL, capture_output=True)
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip()
        raise Failure(f"ip {' '.join(args)}: {message or 'failed'}")

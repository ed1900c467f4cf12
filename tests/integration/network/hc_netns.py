"""Throw-away network namespaces, and running Python code inside one.

`NetNs.run(fn, ...)` forks, moves the child into the namespace with setns(2)
and calls fn there: the driver under test then sees only the namespace's
devices, firewall and sysctls, never the machine's own.
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import secrets
import subprocess
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

CLONE_NEWNET = 0x40000000


class NetNs:
    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    def create(cls, suffix: str = "") -> NetNs:
        ns = cls(f"hc-test-{secrets.token_hex(4)}{suffix}")
        subprocess.run(["ip", "netns", "add", ns.name], check=True)
        ns.sh("ip", "link", "set", "lo", "up")
        return ns

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "delete", self.name], check=False)

    @property
    def path(self) -> Path:
        return Path("/run/netns") / self.name

    def sh(self, *command: str, check: bool = True) -> str:
        done = subprocess.run(
            ["ip", "netns", "exec", self.name, *command], capture_output=True, text=True
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(command)} in {self.name}: {done.stderr.strip()}")
        return done.stdout

    def popen(self, *command: str) -> subprocess.Popen:
        return subprocess.Popen(
            ["ip", "netns", "exec", self.name, *command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args) in a forked child inside this namespace; its result or its exception."""
        ctx = multiprocessing.get_context("fork")
        receiver, sender = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_call_inside, args=(self.path, fn, args, sender))
        child.start()
        sender.close()
        try:
            ok, value = receiver.recv()
        except EOFError:
            raise AssertionError(f"child in {self.name} died (exit {child.exitcode})") from None
        finally:
            child.join()
        if not ok:
            raise value
        return value

    # -- what is in the namespace -------------------------------------------

    def links(self) -> dict[str, dict]:
        return {link["ifname"]: link for link in json.loads(self.sh("ip", "-d", "-j", "link"))}

    def devices(self) -> dict[str, tuple[str, str]]:
        """Each device's kind and master, the parts that do not tick over time."""
        return {
            name: (link.get("linkinfo", {}).get("info_kind", ""), link.get("master", ""))
            for name, link in self.links().items()
        }

    def addresses(self, device: str) -> list[str]:
        data = json.loads(self.sh("ip", "-j", "-4", "addr", "show", "dev", device))
        return [f"{a['local']}/{a['prefixlen']}" for d in data for a in d["addr_info"]]

    def nft_table(self) -> str | None:
        done = subprocess.run(
            ["ip", "netns", "exec", self.name, "nft", "list", "table", "ip", "hypercontainer"],
            capture_output=True,
            text=True,
        )
        return done.stdout if done.returncode == 0 else None

    def sysctl(self, relative: str) -> str:
        return self.sh("cat", f"/proc/sys/net/ipv4/{relative}").strip()


def _call_inside(netns: Path, fn: Callable, args: tuple, sender) -> None:
    try:
        _setns(netns)
        result = (True, fn(*args))
    except BaseException as e:  # noqa: B036, BLE001 - everything goes back to the test
        e.add_note(traceback.format_exc())
        result = (False, e)
    sender.send(result)


def _setns(netns: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(netns, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns {netns}: {os.strerror(errno)}")
    finally:
        os.close(fd)


def host_network() -> dict[str, Any]:
    """What the tests must leave untouched in the machine's own namespace."""
    links = json.loads(_run("ip", "-j", "link"))
    return {
        "links": sorted((i["ifname"], i.get("master", ""), i["address"]) for i in links),
        "addresses": _run("ip", "-4", "-o", "addr"),
        "routes": _run("ip", "route"),
        "nft": _run("nft", "list", "ruleset"),
        "ip_forward": Path("/proc/sys/net/ipv4/ip_forward").read_text(),
    }


def _run(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout

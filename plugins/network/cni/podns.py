"""The named network namespace each pod on a CNI network gets (`ip netns add`).

A named namespace is a bind mount under /run/netns: it outlives hyperd (a
restarted daemon finds it, and CNI DEL can still reach it) and disappears
with the next reboot, when the pod's VM is gone too.
"""

from __future__ import annotations

from pathlib import Path

from ..iproute import ip

RUN_NETNS = Path("/run/netns")


def path(name: str) -> Path:
    return RUN_NETNS / name


def create(name: str) -> None:
    if not path(name).exists():
        ip("netns", "add", name)


def delete(name: str) -> None:
    if path(name).exists():
        ip("netns", "delete", name)

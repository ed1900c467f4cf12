"""Which host paths a container may be given as its root filesystem or a bind mount.

A VM is the pod's isolation from the host, so what crosses into it is what the caller
named and nothing that would undo that: never the host's root, its kernel interfaces
(/proc, /sys, /dev), nor hyperd's own state, sockets, cache or configuration, nor any
directory holding them. Paths are judged as the kernel will open them: resolved.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .errors import UserError

KERNEL_TREES = ("/proc", "/sys", "/dev")
CONFIG_DIR = "/etc/hypercontainer"


def _inside(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def check(path: str, what: str, protected: Iterable[Path]) -> str:
    """The resolved `path`, or a UserError saying why `what` may not use it."""
    if not os.path.isabs(path):
        raise UserError(f"{what}: {path[:200]!r} is not an absolute host path")
    resolved = os.path.realpath(path)
    if resolved == "/":
        raise UserError(f"{what}: the host's root directory cannot be given to a container")
    for tree in KERNEL_TREES:
        if _inside(resolved, tree):
            raise UserError(
                f"{what}: {resolved} is in the host's {tree}, which containers do not get"
            )
    for tree in (CONFIG_DIR, *(os.path.realpath(p) for p in protected)):
        if _inside(resolved, tree) or _inside(tree, resolved):
            raise UserError(f"{what}: {resolved} would expose hyperd's own files ({tree})")
    if not os.path.exists(resolved):
        raise UserError(f"{what}: {resolved} does not exist on the host")
    return resolved

"""Mounting, with the mount(8) of the guest's busybox (or the host's, in tests)."""

from __future__ import annotations

import os
import subprocess

from .errors import Failure


def _run(argv: list[str], cwd: str | None = None) -> None:
    result = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True)
    if result.returncode != 0:
        message = (result.stderr or result.stdout).decode(errors="replace").strip()
        raise Failure(message.splitlines()[-1] if message else f"{argv[0]} failed")


def mount(
    source: str, target: str, fstype: str | None = None, options: str = "", cwd: str | None = None
) -> None:
    os.makedirs(target, exist_ok=True)
    argv = ["mount"]
    if fstype:
        argv += ["-t", fstype]
    if options:
        argv += ["-o", options]
    _run(argv + [source, target], cwd=cwd)


def bind(source: str, target: str, readonly: bool = False) -> None:
    mount(source, target, options="bind")
    if readonly:
        mount(source, target, options="remount,bind,ro")


def is_mounted(target: str) -> bool:
    target = os.path.realpath(target)
    with open("/proc/self/mountinfo") as mountinfo:
        return any(line.split()[4] == target for line in mountinfo)


def unmount(target: str) -> None:
    """Unmount `target` and everything below it; nothing if it is not mounted."""
    if is_mounted(target):
        _run(["umount", "-l", target])


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def find_share(tag: str) -> tuple[str, str]:
    """How share `tag` reaches this VM: ("9p", ""), ("disk", "/dev/vdX") or ("virtiofs", "").

    9p exports name their tag in sysfs; Cloud Hypervisor's disk shares carry it as
    the disk's serial; anything else is taken for a virtio-fs tag (Linux 6.1 lists
    no virtio-fs tags in sysfs).
    """
    ninep = "/sys/bus/virtio/drivers/9pnet_virtio"
    for entry in _entries(ninep):
        if _read(f"{ninep}/{entry}/mount_tag").rstrip("\0") == tag:
            return "9p", ""
    for disk in _entries("/sys/block"):
        if disk.startswith("vd") and _read(f"/sys/block/{disk}/serial") == tag:
            return "disk", f"/dev/{disk}"
    return "virtiofs", ""


def _entries(directory: str) -> list[str]:
    try:
        return os.listdir(directory)
    except OSError:
        return []

"""mount(2) and umount2(2) for the host side, and what /proc/self/mountinfo lists.

Used by hyperd for the per-pod share (podshare.py) and by the containerd shim for
the root filesystems containerd hands over. Called through libc directly: the
targets are often file descriptors (`/proc/self/fd/N`), which keeps a path that
someone else can change (a guest writes into the pod share) out of the kernel's
lookup, and overlay options can be longer than a command line should carry.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 0x2
UMOUNT_NOFOLLOW = 0x8

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_OCTAL = re.compile(r"\\([0-7]{3})")


class MountError(OSError):
    pass


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise MountError(errno, f"{what}: {os.strerror(errno)}")


def mount(
    source: str | None,
    target: str,
    fstype: str | None = None,
    flags: int = 0,
    data: str | None = None,
) -> None:
    _check(
        _libc.mount(_c(source), _c(target), _c(fstype), ctypes.c_ulong(flags), _c(data)),
        f"mount {source} on {target}",
    )


def umount(target: str, flags: int = MNT_DETACH) -> None:
    _check(_libc.umount2(_c(target), ctypes.c_int(flags)), f"unmount {target}")


def fd_path(fd: int) -> str:
    """A path the kernel resolves to exactly what `fd` refers to."""
    return f"/proc/self/fd/{fd}"


def _c(text: str | None) -> bytes | None:
    return None if text is None else os.fsencode(text)


def mount_points() -> list[str]:
    """Every mount point of this mount namespace, as mountinfo lists them (unescaped)."""
    with open("/proc/self/mountinfo") as mountinfo:
        return [
            _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), line.split()[4]) for line in mountinfo
        ]


def mounted_under(directory: str) -> list[str]:
    """Mount points at or below `directory`, deepest first (the order to unmount them)."""
    directory = os.path.realpath(directory)
    prefix = directory.rstrip("/") + "/"
    found = {p for p in mount_points() if p == directory or p.startswith(prefix)}
    return sorted(found, key=lambda p: p.count("/"), reverse=True)


def is_mount_point(path: str) -> bool:
    return os.path.realpath(path) in set(mount_points())


def unmount_all(directory: str) -> None:
    """Unmount everything at or below `directory` (a trusted path); nothing if none."""
    for point in mounted_under(directory):
        umount(point, MNT_DETACH | UMOUNT_NOFOLLOW)

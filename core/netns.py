"""Working inside another network namespace: checking one, running code in it, opening a tap.

setns(2) moves only the calling thread, so the work runs in a thread of its own
that joins the namespace and ends with it: the rest of hyperd never leaves its
own namespace. Processes started from that thread (ip, tc) inherit the
namespace, and a tap opened there stays usable from anywhere: the file
descriptor, not the namespace, is what QEMU gets.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import stat
import struct
import threading
from collections.abc import Callable
from typing import TypeVar

from .errors import DriverError, UserError

CLONE_NEWNET = 0x40000000
NS_GET_NSTYPE = 0xB703  # ioctl on a namespace file: which kind of namespace it is
TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x0002, 0x1000, 0x4000
MAX_PATH = 4096

T = TypeVar("T")


def check(path: str) -> str:
    """`path` if it names a network namespace other than hyperd's own; else a one-line error."""
    if (
        not isinstance(path, str)
        or not path.startswith("/")
        or "\0" in path
        or len(path) > MAX_PATH
    ):
        raise UserError(
            f"netns {str(path)[:80]!r}: expected the absolute path of a network "
            "namespace, e.g. /var/run/netns/NAME"
        )
    try:
        # A namespace file looks like a regular file; opening anything else (a FIFO, a
        # device) could block or have effects of its own, so it is never opened.
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise UserError(f"netns {path[:200]}: not a network namespace")
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as e:
        raise UserError(f"netns {path[:200]}: {e.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or _nstype(fd) != CLONE_NEWNET:
            raise UserError(f"netns {path[:200]}: not a network namespace")
        own = os.stat("/proc/thread-self/ns/net")
        if (info.st_dev, info.st_ino) == (own.st_dev, own.st_ino):
            raise UserError(f"netns {path[:200]}: that is hyperd's own network namespace")
    finally:
        os.close(fd)
    return path


def exists(path: str) -> bool:
    try:
        check(path)
    except UserError:
        return False
    return True


def _nstype(fd: int) -> int | None:
    try:
        return fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:  # a plain file, or a kernel older than 4.11
        return None


def run_inside(path: str, fn: Callable[..., T], *args) -> T:
    """fn(*args) in a thread that has joined the network namespace `path`."""
    outcome: list = []

    def inside() -> None:
        try:
            _setns(path)
            outcome.append((True, fn(*args)))
        except BaseException as e:  # noqa: B036, BLE001 - handed back to the caller's thread
            outcome.append((False, e))

    worker = threading.Thread(target=inside, name="netns", daemon=True)
    worker.start()
    worker.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def _setns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise DriverError(f"cannot enter network namespace {path}: {os.strerror(errno)}")
    finally:
        os.close(fd)


def open_tap(path: str, name: str) -> int:
    """A file descriptor of the persistent tap `name` inside the namespace `path`.

    The caller owns it (and closes it once the VMM holds its copy).
    """
    return run_inside(path, _attach_tap, name)


def _attach_tap(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    try:
        request = struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)
        fcntl.ioctl(fd, TUNSETIFF, request.ljust(40, b"\0"))
    except OSError as e:
        os.close(fd)
        raise DriverError(
            f"cannot open tap {name} in its network namespace: {e.strerror}"
        ) from None
    return fd

"""What makes a VM cloned from a template its own machine: its entropy and its clock.

Every clone of a template wakes with the template's kernel random state and the
wall clock of the moment the template was saved. The host sends fresh random
bytes and its time with start_pod (to booted VMs too: it costs nothing). The
host name, MAC and addresses are set by pod.py like any pod's.
"""

from __future__ import annotations

import fcntl
import os
import struct
import time

from .errors import Failure

RNDADDENTROPY = 0x40085203  # _IOW('R', 0x03, int[2]): add bytes, credited as entropy
RNDRESEEDCRNG = 0x5207  # _IO('R', 0x07): reseed the CRNG from the pool now
MAX_ENTROPY = 4096  # bytes in one request
MIN_CLOCK_NS = 1_600_000_000 * 10**9  # a host clock before 2020 is a broken one


def add_entropy(data: bytes) -> None:
    """Mix `data` into the kernel's pool, credited, and reseed its CRNG at once, so that
    the next read of /dev/urandom in this VM differs from its siblings'."""
    if not data:
        return
    if len(data) > MAX_ENTROPY:
        raise Failure(f"more than {MAX_ENTROPY} bytes of entropy")
    request = struct.pack("ii", len(data) * 8, len(data)) + data  # struct rand_pool_info
    fd = os.open("/dev/random", os.O_WRONLY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, RNDADDENTROPY, request)
        fcntl.ioctl(fd, RNDRESEEDCRNG)
    except OSError as exc:
        raise Failure(f"adding entropy: {exc.strerror}") from None
    finally:
        os.close(fd)


def set_clock(ns: int) -> None:
    if ns < MIN_CLOCK_NS:
        raise Failure(f"clock {ns} ns is before 2020")
    try:
        time.clock_settime_ns(time.CLOCK_REALTIME, ns)
    except OSError as exc:
        raise Failure(f"setting the clock: {exc.strerror}") from None

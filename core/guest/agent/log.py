"""The agent's log: one line per message on stderr, which is the guest's console.

Each line carries the guest's uptime, which shows where boot time goes.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator


def _uptime() -> str:
    try:
        with open("/proc/uptime") as file:
            return file.read().split()[0]
    except (OSError, IndexError):
        return "?"


def log(message: str, **fields) -> None:
    details = "".join(f" {key}={value}" for key, value in fields.items())
    sys.stderr.write(f"hc-agent [{_uptime()}]: {message}{details}\n")
    sys.stderr.flush()


@contextlib.contextmanager
def timed(message: str, **fields) -> Iterator[None]:
    """Log `message` with the seconds the block took: where a container's start goes."""
    started = time.monotonic()
    yield
    log(message, seconds=f"{time.monotonic() - started:.3f}", **fields)


def drain() -> None:
    """Wait until everything logged has left the console. The host may save this VM as a
    template the moment the agent opens its port: a serial port saved in the middle of
    sending stays silent in every clone (seen with QEMU 7.2 under TCG)."""
    import termios

    with contextlib.suppress(OSError, ValueError):
        if sys.stderr.isatty():
            termios.tcdrain(sys.stderr.fileno())

"""The agent's log: one line per message on stderr, which is the guest's console.

Each line carries the guest's uptime, which shows where boot time goes.
"""

from __future__ import annotations

import sys


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

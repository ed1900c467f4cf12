"""The agent's log: one line per message on stderr, which is the guest's console."""

from __future__ import annotations

import sys


def log(message: str, **fields) -> None:
    details = " ".join(f"{key}={value}" for key, value in fields.items())
    sys.stderr.write(f"hc-agent: {message}{' ' + details if details else ''}\n")
    sys.stderr.flush()

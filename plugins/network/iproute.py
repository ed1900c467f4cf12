"""iproute2's `ip`, as the network drivers run it: stdout, or a one-line DriverError."""

from __future__ import annotations

import subprocess

from hypercontainer.errors import DriverError


def ip(*args: str) -> str:
    try:
        done = subprocess.run(
            ["ip", *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise DriverError("this network needs iproute2 ('ip' is not installed)") from None
    if done.returncode != 0:
        raise DriverError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout

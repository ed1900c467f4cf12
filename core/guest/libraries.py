"""Shared libraries a set of guest binaries needs, taken from the host.

The guest's packages come from this host's own apt sources, so the host's
libraries are the ones they were built against; `ldd` resolves the whole
closure (it runs the dynamic loader in trace mode).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from ..errors import DriverError

# "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
_RESOLVED = re.compile(r"^\s*(?:\S+ => )?(/\S+) \(0x[0-9a-f]+\)$")
_MISSING = re.compile(r"^\s*(\S+) => not found$")


def needed(binaries: list[Path]) -> list[str]:
    """Absolute host paths (as the loader names them) of every library needed."""
    paths: set[str] = set()
    for binary in binaries:
        done = subprocess.run(
            ["ldd", str(binary)],
            capture_output=True,
            text=True,
            check=False,
            env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"},
        )
        if "not a dynamic executable" in done.stdout + done.stderr:
            continue  # statically linked (busybox)
        if done.returncode != 0:
            raise DriverError(f"ldd {binary.name}: {done.stderr.strip()}")
        for line in done.stdout.splitlines():
            if missing := _MISSING.match(line):
                raise DriverError(f"{binary.name} needs {missing.group(1)}, not on this host")
            if resolved := _RESOLVED.match(line):
                paths.add(resolved.group(1))
    return sorted(paths)

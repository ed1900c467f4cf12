"""A container's writable layer: a tmpfs of its own, sized to what the guest can spare.

The guest has no disk: what a container writes to its root filesystem (the overlay's
upper directory) lives in the guest's memory, and tmpfs pages cannot be reclaimed. On
the guest's shared /run (half its memory) a container writing without end took the
guest's last memory and the VM died with it; on a tmpfs sized, when the container is
made, to the memory the guest then has available less a headroom for the agent and
the container's own processes, the writer gets ENOSPC, as on a full disk, and the pod
goes on. A bigger writable layer takes a pod with more memory. The agent's own files
for the container (its OCI bundle, its execs' specs) stay outside it, so that a full
layer never stops an exec into the container.
"""

from __future__ import annotations

import os

from . import mounts

HEADROOM = 16 << 20  # the agent, crun and the container's processes must still run
MINIMUM = 4 << 20  # /etc/hostname, /etc/hosts, the spec's files and a little more
WRITABLE = "writable"  # in the container's directory: the overlay's upper and work


def available_memory(meminfo: str = "/proc/meminfo") -> int:
    """Bytes the guest can give without reclaiming what it cannot (MemAvailable)."""
    with open(meminfo) as lines:
        for line in lines:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise OSError(f"{meminfo} has no MemAvailable")


def writable_size(available: int) -> int:
    return max(MINIMUM, available - HEADROOM)


def mount_writable(container_dir: str) -> str:
    """Mount the container's layer at <container_dir>/writable, with the overlay's
    upper and work directories in it (overlayfs wants both on one filesystem)."""
    writable = os.path.join(container_dir, WRITABLE)
    size = writable_size(available_memory())
    mounts.mount("tmpfs", writable, "tmpfs", f"size={size},mode=0700,nosuid,nodev")
    for name in ("upper", "work"):
        os.mkdir(os.path.join(writable, name))
    return writable

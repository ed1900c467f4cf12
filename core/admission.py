"""Admission: a pod the host cannot hold is refused before anything of it starts.

A pod asks for its guest memory plus what its VM costs the host besides
(`admission.vm_overhead_mb`: the TCG translation cache, QEMU itself). It is
admitted if that fits in what the host has available (the kernel's
MemAvailable) less a reserve kept for everything else (`admission.reserve_mb`)
and less what the pods already started were given but have not taken yet: a
guest takes its memory as it runs, so counting only what is in use now would
admit pods whose guests later outgrow the host together. What a VM has taken
is its VMM's anonymous resident memory (RssAnon): exactly what MemAvailable no
longer counts.

Starts are admitted one at a time (`lock`), and a pod being started is counted
from the moment it is admitted, so concurrent starts cannot overcommit either.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from .config import AdmissionConfig
from .errors import UserError
from .model import Pod, PodState

MiB = 1 << 20
HOLDING = (PodState.RUNNING, PodState.PAUSED, PodState.STOPPING)


def mem_available() -> int:
    """Bytes the host can give without swapping (/proc/meminfo's MemAvailable)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise OSError("/proc/meminfo has no MemAvailable")


def anonymous_resident(pid: int) -> int | None:
    """Bytes of anonymous memory process `pid` has resident; None if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return None


class Admission:
    def __init__(
        self,
        config: AdmissionConfig,
        available: Callable[[], int] = mem_available,
        resident: Callable[[int], int | None] = anonymous_resident,
    ) -> None:
        self.config = config
        self._available = available
        self._resident = resident
        self.lock = threading.Lock()  # held from the check until the pod counts as started

    def asked(self, memory_mb: int) -> int:
        """Host bytes a pod of `memory_mb` MB of guest memory is counted for."""
        return (memory_mb + self.config.vm_overhead_mb) * MiB

    def check(
        self,
        pod_id: str | None,
        memory_mb: int,
        pods: Iterable[Pod],
        memory_of: Callable[[Pod], int],
    ) -> None:
        """Raise UserError if a pod of `memory_mb` MB does not fit beside `pods` (every
        pod in the store, `pod_id`'s own record aside; `memory_of` gives a pod's MB)."""
        if not self.config.enabled:
            return
        promised = sum(
            self._not_taken(pod, memory_of(pod))
            for pod in pods
            if pod.id != pod_id and (pod.state in HOLDING or pod.starting)
        )
        available = self._available()
        free = available - self.config.reserve_mb * MiB - promised
        asked = self.asked(memory_mb)
        if asked > free:
            raise UserError(
                f"not enough memory: the pod needs {asked // MiB} MiB ({memory_mb} MiB of "
                f"memory and {self.config.vm_overhead_mb} MiB for its VM) but only "
                f"{max(free, 0) // MiB} MiB are free ({available // MiB} MiB available, less "
                f"the reserve of {self.config.reserve_mb} MiB and {promised // MiB} MiB "
                f"promised to pods already started)"
            )

    def _not_taken(self, pod: Pod, memory_mb: int) -> int:
        """What the pod's VM was given and has not taken yet (all of it while booting)."""
        pid = str((pod.vm or {}).get("pid", ""))
        taken = self._resident(int(pid)) if pid.isdigit() else None
        return max(0, self.asked(memory_mb) - (taken or 0))

"""A guest's shape: what two VMs must share for one to start from the other's template.

A clone gets the template's memory and device state, so everything that
shaped them must be equal: the VMM build, the accelerator, the kernel, initrd
and their arguments, vCPUs, memory and the device set (share tags in order,
the kind of network device), and whatever else of the driver's settings goes
into the saved state (`options`). Back-ends (a share's host path, a tap,
sockets, port forwards) are the clone's own and are not part of the shape.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from typing import Any

from hypercontainer.drivers import VMSpec

Option = tuple[str, str | int | None]


def _identity(path: str) -> tuple[str, int, int]:
    """A file as its path, size and modification time: a rebuilt file is another file."""
    try:
        stat = os.stat(path)
    except OSError:
        return (path, -1, -1)
    return (path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def vmm_version(binary: str) -> str:
    """The first line of `binary --version` ("QEMU emulator version 7.2.x", ...)."""
    done = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    first = done.stdout.strip().splitlines()[:1]
    return first[0] if first else "unknown"


@dataclass(frozen=True)
class Shape:
    vmm: str  # the driver: "qemu" | "cloud-hypervisor"
    vmm_version: str
    accelerator: str  # "kvm" | "tcg"
    kernel_args: tuple[str, ...]
    vcpus: int
    memory_mb: int
    shares: tuple[str, ...]  # the share tags, in device order
    network: str  # "none" | "user" | "tap"
    options: tuple[Option, ...]  # the driver's own, e.g. QEMU's TCG cache size
    # The VMM binary, kernel and initrd (then any helper the driver names), each as
    # (path, size, mtime): an upgraded VMM or a new guest image is a new shape.
    files: tuple[tuple[str, int, int], ...]

    @classmethod
    def of(
        cls,
        spec: VMSpec,
        vmm: str,
        binary: str,
        version: str,
        accelerator: str,
        options: dict[str, str | int | None] | None = None,
        helpers: tuple[str, ...] = (),
    ) -> Shape:
        """`version` is the binary's (vmm_version()); `helpers` are other programs whose
        build goes into the saved state (e.g. a vhost-user back-end)."""
        paths = (shutil.which(binary) or binary, str(spec.kernel), str(spec.initrd), *helpers)
        return cls(
            vmm=vmm,
            vmm_version=version,
            accelerator=accelerator,
            kernel_args=tuple(spec.kernel_args),
            vcpus=spec.vcpus,
            memory_mb=spec.memory_mb,
            shares=tuple(share.tag for share in spec.shares),
            network=spec.network.kind if spec.network else "none",
            options=tuple(sorted((options or {}).items())),
            files=tuple(_identity(path) for path in paths),
        )

    @property
    def key(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def kernel(self) -> str:
        return self.files[1][0]

    @property
    def initrd(self) -> str:
        return self.files[2][0]

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Shape:
        return cls(
            **{
                **data,
                "kernel_args": tuple(data["kernel_args"]),
                "shares": tuple(data["shares"]),
                "options": tuple(tuple(option) for option in data["options"]),
                "files": tuple(tuple(f) for f in data["files"]),
            }
        )

    def inputs_current(self) -> bool:
        """Whether the VMM, kernel and initrd it was made from are still the ones there."""
        return all(_identity(path) == (path, size, mtime) for path, size, mtime in self.files)

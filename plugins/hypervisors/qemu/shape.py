"""A guest's shape: what two VMs must share for one to start from the other's template.

A clone gets the template's memory and device state, so everything that
shaped them must be equal: the QEMU build, the accelerator, the kernel, initrd
and their arguments, vCPUs, memory and the device set (share tags in order,
the kind of network device). Back-ends (a share's host path, a tap, sockets,
port forwards) are the clone's own and are not part of the shape.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from typing import Any

from hypercontainer.drivers import VMSpec


def _identity(path: str) -> tuple[str, int, int]:
    """A file as its path, size and modification time: a rebuilt file is another file."""
    try:
        stat = os.stat(path)
    except OSError:
        return (path, -1, -1)
    return (path, stat.st_size, stat.st_mtime_ns)


@dataclass(frozen=True)
class Shape:
    qemu_version: str
    accelerator: str
    tcg_cache_mb: int | None
    kernel_args: tuple[str, ...]
    vcpus: int
    memory_mb: int
    shares: tuple[str, ...]  # the 9p tags, in device order
    network: str  # "none" | "user" | "tap"
    # The QEMU binary, kernel and initrd, each as (path, size, mtime): an upgraded
    # QEMU or a new guest image is a new shape.
    files: tuple[tuple[str, int, int], ...]

    @classmethod
    def of(cls, spec: VMSpec, binary: str, version: str, accelerator: str,
           tcg_cache_mb: int | None) -> Shape:
        paths = (shutil.which(binary) or binary, str(spec.kernel), str(spec.initrd))
        return cls(
            qemu_version=version,
            accelerator=accelerator,
            tcg_cache_mb=tcg_cache_mb if accelerator == "tcg" else None,
            kernel_args=tuple(spec.kernel_args),
            vcpus=spec.vcpus,
            memory_mb=spec.memory_mb,
            shares=tuple(share.tag for share in spec.shares),
            network=spec.network.kind if spec.network else "none",
            files=tuple(_identity(path) for path in paths),
        )

    @property
    def key(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Shape:
        return cls(**{**data, "kernel_args": tuple(data["kernel_args"]),
                      "shares": tuple(data["shares"]),
                      "files": tuple(tuple(f) for f in data["files"])})

    def inputs_current(self) -> bool:
        """Whether the QEMU, kernel and initrd it was made from are still the ones there."""
        return all(_identity(path) == (path, size, mtime) for path, size, mtime in self.files)

"""The qemu driver's settings: the [qemu] table of the configuration."""

from __future__ import annotations

from hypercontainer.driver_settings import HypervisorSettings
from pydantic import Field


class QemuSettings(HypervisorSettings):
    binary: str = "qemu-system-x86_64"
    accelerator: str = "auto"  # auto | kvm | tcg
    # TCG translation cache per VM, in MiB; None: QEMU's own default
    tcg_cache_mb: int | None = Field(default=64, ge=8, le=4096)
    # ...for a VM restored from a template. It translates less than a boot, and its cache
    # is most of an idle clone's PSS: 36 MiB keeps 10 idle clones under 80 MiB PSS each,
    # 64 starts a clone ~0.6 s sooner (bench/clone_cache.py, bench/pod_memory.py).
    clone_tcg_cache_mb: int | None = Field(default=36, ge=8, le=4096)
    # Start pods from a VM template of their shape (docs/guest.md); false: always boot.
    template: bool = True

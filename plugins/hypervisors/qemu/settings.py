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
    # is most of an idle clone's PSS: measured start of a clone 1.97 s at 64 MiB, 2.09 at
    # 48, 2.38 at 40, 2.75 at 32; 40 keeps 10 idle clones under 80 MiB PSS each.
    clone_tcg_cache_mb: int | None = Field(default=40, ge=8, le=4096)
    # Start pods from a VM template of their shape (docs/guest.md); false: always boot.
    template: bool = True

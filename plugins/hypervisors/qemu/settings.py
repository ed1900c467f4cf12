"""The qemu driver's settings: the [qemu] table of the configuration."""

from __future__ import annotations

from hypercontainer.driver_settings import HypervisorSettings
from pydantic import Field


class QemuSettings(HypervisorSettings):
    binary: str = "qemu-system-x86_64"
    accelerator: str = "auto"  # auto | kvm | tcg
    # TCG translation cache per VM, in MiB; None: QEMU's own default
    tcg_cache_mb: int | None = Field(default=64, ge=8, le=4096)
    # ...for a VM restored from a template: it runs far less code than a boot (no kernel
    # start-up, no init), and 32 MiB cost 23 MiB less PSS per clone than 64 at no
    # measured start-up cost (docs/benchmarks.md).
    clone_tcg_cache_mb: int | None = Field(default=32, ge=8, le=4096)
    # Start pods from a VM template of their shape (docs/guest.md); false: always boot.
    template: bool = True

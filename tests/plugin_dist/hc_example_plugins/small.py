"""A hypervisor: QEMU that refuses pods asking for more memory than it allows.

Its table is [qemu-small]: every setting of [qemu], and `max_memory_mb`.
"""

from __future__ import annotations

from hypercontainer.drivers import VMHandle, VMSpec
from hypercontainer.errors import UserError
from hypercontainer_plugins.hypervisors.qemu import QemuHypervisor
from hypercontainer_plugins.hypervisors.qemu.settings import QemuSettings
from pydantic import Field


class SmallQemuSettings(QemuSettings):
    max_memory_mb: int = Field(default=512, ge=64)


class SmallQemu(QemuHypervisor):
    name = "qemu-small"
    Settings = SmallQemuSettings
    settings: SmallQemuSettings

    def start(self, spec: VMSpec) -> VMHandle:
        self._check_size(spec)
        return super().start(spec)

    def restore(self, spec: VMSpec) -> VMHandle | None:
        self._check_size(spec)
        return super().restore(spec)

    def _check_size(self, spec: VMSpec) -> None:
        if spec.memory_mb > self.settings.max_memory_mb:
            raise UserError(
                f"qemu-small: {spec.memory_mb} MB of memory asked, at most "
                f"{self.settings.max_memory_mb} MB allowed"
            )

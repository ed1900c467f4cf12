"""The cloud-hypervisor driver's settings: the [cloud-hypervisor] table (also spelt
[cloud_hypervisor], as older configuration files do)."""

from __future__ import annotations

from hypercontainer.driver_settings import HypervisorSettings


class CloudHypervisorSettings(HypervisorSettings):
    binary: str = "cloud-hypervisor"
    virtiofsd: str = "virtiofsd"
    # Restore pods from a snapshot of a template of their shape (docs/cloud-hypervisor.md);
    # false: always boot.
    template: bool = True

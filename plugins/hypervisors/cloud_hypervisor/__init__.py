"""Cloud Hypervisor: pods in VMs driven over Cloud Hypervisor's REST API."""

from .driver import CloudHypervisor

__all__ = ["CloudHypervisor"]

"""QEMU: one qemu-system-x86_64 process per pod, driven over QMP."""

from .driver import QemuHypervisor

__all__ = ["QemuHypervisor"]

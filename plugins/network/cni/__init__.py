"""The `cni` network driver: a named namespace per pod filled by CNI plugins, joined by the VM."""

from .driver import CniNetwork

__all__ = ["CniNetwork"]

"""The `bridge` network driver: taps on a Linux bridge, leases in the state store, nftables."""

from .driver import BridgeNetwork

__all__ = ["BridgeNetwork"]

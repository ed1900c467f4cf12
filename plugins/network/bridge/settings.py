"""The bridge network's settings: the [bridge] table of the configuration."""

from __future__ import annotations

from hypercontainer.driver_settings import DriverSettings


class BridgeSettings(DriverSettings):
    name: str = "hyper0"
    subnet: str = "192.168.123.0/24"
    host_ip: str = "0.0.0.0"  # where port mappings listen by default: every local address

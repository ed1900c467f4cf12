"""A network driver for pods that must have no network at all (only loopback).

Its one setting, in the [isolated] table of hypercontainer's configuration, is the
reason given when a pod asks to publish ports.
"""

from __future__ import annotations

from hypercontainer.driver_settings import DriverSettings
from hypercontainer.drivers import Network, NetworkAttachment, PortForward
from hypercontainer.errors import UserError


class IsolatedSettings(DriverSettings):
    reason: str = "pods on it have no network"


class IsolatedNetwork(Network):
    name = "isolated"
    Settings = IsolatedSettings
    settings: IsolatedSettings

    def attach(self, pod_id: str, forwards: list[PortForward]) -> NetworkAttachment:
        if forwards:
            raise self._no_ports()
        return NetworkAttachment(kind="none")

    def detach(self, pod_id: str, attachment: NetworkAttachment) -> None:
        """Nothing was allocated."""

    def add_forward(self, pod_id, attachment, fwd):
        raise self._no_ports()

    def _no_ports(self) -> UserError:
        return UserError(f"the isolated network cannot publish ports: {self.settings.reason}")

"""A network driver for pods that must have no network at all (only loopback)."""

from __future__ import annotations

from hypercontainer.drivers import Network, NetworkAttachment, PortForward
from hypercontainer.errors import UserError


class IsolatedNetwork(Network):
    name = "isolated"

    def attach(self, pod_id: str, forwards: list[PortForward]) -> NetworkAttachment:
        if forwards:
            raise UserError("the isolated network cannot publish ports")
        return NetworkAttachment(kind="none")

    def detach(self, pod_id: str, attachment: NetworkAttachment) -> None:
        """Nothing was allocated."""

    def add_forward(self, pod_id, attachment, fwd):
        raise UserError("the isolated network cannot publish ports")

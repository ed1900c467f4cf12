"""User-mode networking: the hypervisor's own NAT (QEMU's slirp), no root needed.

The guest always sees the same small network; port mappings become host
forwards that the hypervisor opens itself. Nothing on the host changes, so
detach and adopt have nothing to do.
"""

from __future__ import annotations

from hypercontainer.driver_settings import DriverSettings
from hypercontainer.drivers import Cap, Network, NetworkAttachment, PortForward
from hypercontainer.errors import NotFound

from . import hostports, ports
from .mac import mac_for

# QEMU's user-mode network: 10.0.2.0/24, the host as gateway, a built-in DNS relay.
GUEST_ADDRESS = "10.0.2.15/24"
GATEWAY = "10.0.2.2"
DNS = "10.0.2.3"


class UserSettings(DriverSettings):
    """The [user] table (also spelt [user_network], as older configuration files do)."""

    host_ip: str = "127.0.0.1"  # where port mappings listen by default


class UserNetwork(Network):
    name = "user"
    Settings = UserSettings
    settings: UserSettings
    requires = frozenset({Cap.USER_NETWORK})

    def attach(self, pod_id: str, forwards: list[PortForward]) -> NetworkAttachment:
        forwards = self._checked(forwards)
        ports.check_unique(forwards)
        hostports.check_free(forwards)
        needs = {Cap.USER_NETWORK} | ({Cap.HOST_FORWARDS} if forwards else set())
        return NetworkAttachment(
            kind="user",
            mac=mac_for(pod_id),
            address=GUEST_ADDRESS,
            gateway=GATEWAY,
            dns=[DNS],
            forwards=forwards,
            requires=frozenset(needs),
        )

    def detach(self, pod_id: str, attachment: NetworkAttachment) -> None:
        """The VMM's exit closed every forward; nothing else was allocated."""

    def add_forward(
        self, pod_id: str, attachment: NetworkAttachment, fwd: PortForward
    ) -> PortForward:
        """Check `fwd` can be added; the runtime then asks the hypervisor to open it.

        Returns the forward with the default host address filled in: that is
        the one to hand to the hypervisor and to record in the attachment.
        """
        (fwd,) = self._checked([fwd])
        ports.check_unique([fwd], taken=attachment.forwards)
        hostports.check_one(fwd)
        return fwd

    def remove_forward(
        self, pod_id: str, attachment: NetworkAttachment, fwd: PortForward
    ) -> PortForward:
        """The recorded forward matching `fwd`, which the hypervisor must then close."""
        (wanted,) = self._checked([fwd])
        for existing in attachment.forwards:
            if existing == wanted:
                return existing
        raise NotFound(f"pod {pod_id} has no port mapping {wanted}")

    def describe(self) -> dict:
        return {**super().describe(), "host_ip": self.settings.host_ip}

    def _checked(self, forwards: list[PortForward]) -> list[PortForward]:
        return ports.normalise(forwards, ports.check_host_ip(self.settings.host_ip))

import socket

import pytest
from hypercontainer.drivers import Cap, PortForward
from hypercontainer.errors import NotFound, UserError
from hypercontainer_plugins.network.mac import mac_for
from hypercontainer_plugins.network.user import UserNetwork


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_attach_without_forwards(config):
    attachment = UserNetwork(config).attach("pod-1", [])
    assert attachment.kind == "user"
    assert attachment.mac == mac_for("pod-1")
    assert (attachment.address, attachment.gateway, attachment.dns) == (
        "10.0.2.15/24",
        "10.0.2.2",
        ["10.0.2.3"],
    )
    assert attachment.forwards == []
    assert attachment.requires == {Cap.USER_NETWORK}


def test_forwards_get_the_configured_host_ip(config):
    port = free_port()
    config = config.with_table("user", host_ip="127.0.0.1")
    attachment = UserNetwork(config).attach("pod-1", [PortForward("tcp", "", port, 80)])
    assert attachment.forwards == [PortForward("tcp", "127.0.0.1", port, 80)]
    assert attachment.requires == {Cap.USER_NETWORK, Cap.HOST_FORWARDS}


@pytest.mark.parametrize(
    ("kind", "protocol"), [(socket.SOCK_STREAM, "tcp"), (socket.SOCK_DGRAM, "udp")]
)
def test_port_in_use_is_refused(config, kind, protocol):
    with socket.socket(socket.AF_INET, kind) as busy:
        busy.bind(("127.0.0.1", 0))
        if kind == socket.SOCK_STREAM:
            busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(UserError, match=f"127.0.0.1:{port}/{protocol} is already in use"):
            UserNetwork(config).attach("pod-1", [PortForward(protocol, "", port, 80)])


def test_foreign_host_address_is_refused(config):
    with pytest.raises(UserError, match="not an address of this host"):
        UserNetwork(config).attach("pod-1", [PortForward("tcp", "192.0.2.7", free_port(), 80)])


def test_duplicate_host_port_is_refused(config):
    port = free_port()
    forwards = [PortForward("tcp", "", port, 80), PortForward("tcp", "127.0.0.1", port, 81)]
    with pytest.raises(UserError, match="mapped twice"):
        UserNetwork(config).attach("pod-1", forwards)


def test_add_and_remove_forward(config):
    network = UserNetwork(config)
    first, second = free_port(), free_port()
    attachment = network.attach("pod-1", [PortForward("tcp", "", first, 80)])
    added = network.add_forward("pod-1", attachment, PortForward("udp", "", second, 53))
    assert added == PortForward("udp", "127.0.0.1", second, 53)
    with pytest.raises(UserError, match="mapped twice"):
        network.add_forward("pod-1", attachment, PortForward("tcp", "", first, 81))
    removed = network.remove_forward("pod-1", attachment, PortForward("tcp", "", first, 80))
    assert removed == attachment.forwards[0]
    with pytest.raises(NotFound):
        network.remove_forward("pod-1", attachment, PortForward("tcp", "", first, 99))

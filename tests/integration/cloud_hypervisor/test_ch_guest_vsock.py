"""The guest agent's side of Cloud Hypervisor's transport: an AF_VSOCK listener.

Run on the host kernel, where it allows: binding needs the vsock core, and a
round trip needs a local transport (the vsock_loopback module), which a
machine without it lacks; those parts are skipped there, never faked.
"""

from __future__ import annotations

import socket
import threading

import pytest
from hypercontainer.guest.agent import transport

VMADDR_CID_LOCAL = 1  # socket.VMADDR_CID_LOCAL from Python 3.12 on


def vsock_available() -> bool:
    try:
        socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM).close()
    except OSError:
        return False
    return True


pytestmark = pytest.mark.skipif(not vsock_available(), reason="no AF_VSOCK in this kernel")


@pytest.fixture
def listener():
    try:
        listener = transport.vsock_listener()
    except OSError as e:
        pytest.skip(f"cannot listen on vsock port {transport.VSOCK_PORT}: {e}")
    yield listener
    listener.close()


def test_the_agent_listens_on_vsock_port_1024_of_any_cid(listener):
    assert listener.family == socket.AF_VSOCK
    assert listener.getsockname() == (socket.VMADDR_CID_ANY, 1024)
    # A second listener on the same port is refused: the agent owns it.
    with pytest.raises(OSError):
        transport.vsock_listener()


def test_a_host_connection_reaches_the_agent(listener):
    client = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    client.settimeout(2)
    try:
        client.connect((VMADDR_CID_LOCAL, transport.VSOCK_PORT))
    except OSError as e:
        client.close()
        pytest.skip(f"no local vsock transport (vsock_loopback): {e}")
    connections = transport.listener_connections(listener)
    accepted: list = []
    thread = threading.Thread(target=lambda: accepted.append(next(connections)))
    thread.start()
    thread.join(5)
    (connection,) = accepted
    client.sendall(b"hello")
    assert connection.read() == b"hello"
    connection.write(b"agent")
    assert client.recv(16) == b"agent"
    client.close()
    assert connection.read() == b""
    connection.close()

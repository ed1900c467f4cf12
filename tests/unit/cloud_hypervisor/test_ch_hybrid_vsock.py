"""The hybrid vsock handshake, against a socket pair playing the VMM."""

from __future__ import annotations

import socket
import threading

import pytest
from hypercontainer.errors import AgentTimeout
from hypercontainer_plugins.hypervisors.cloud_hypervisor.hybrid_vsock import (
    HandshakeRefused,
    connect,
    handshake,
)


def vmm_answers(answer: bytes, then: bytes = b"") -> tuple[socket.socket, threading.Thread]:
    host, vmm = socket.socketpair()
    received = []

    def serve() -> None:
        received.append(vmm.recv(64))
        vmm.sendall(answer + then)
        vmm.close()

    thread = threading.Thread(target=serve)
    thread.start()
    thread.received = received  # type: ignore[attr-defined]
    return host, thread


def test_the_handshake_asks_for_the_port_and_reads_only_its_answer():
    host, vmm = vmm_answers(b"OK 1073741824\n", then=b"\x00agent bytes")
    assert handshake(host, 1024) == 1073741824
    vmm.join()
    assert vmm.received == [b"CONNECT 1024\n"]
    # What follows the answer belongs to the guest's stream, untouched.
    assert host.recv(100) == b"\x00agent bytes"
    host.close()


@pytest.mark.parametrize(
    "answer, reason",
    [
        (b"", "closed the connection"),
        (b"ERR no listener\n", "answered 'ERR no listener'"),
        (b"OK port\n", "answered 'OK port'"),
        (b"OK " + b"1" * 100, "too long"),
    ],
)
def test_anything_but_ok_is_refused(answer, reason):
    host, vmm = vmm_answers(answer)
    with pytest.raises(HandshakeRefused, match=reason):
        handshake(host, 1024)
    vmm.join()
    host.close()


def test_connect_gives_up_at_the_deadline_when_nothing_listens(tmp_path):
    with pytest.raises(AgentTimeout, match="no answer within 0.2s"):
        connect(tmp_path / "absent.sock", 1024, timeout=0.2)

"""Hybrid vsock: reaching a guest vsock port through the VMM's unix socket.

The host connects to the unix socket named in the VM's vsock device and
writes `CONNECT <port>\\n`; the VMM connects to that port in the guest and
answers `OK <host port>\\n`, after which the socket is a plain byte stream to
the guest. If nothing listens on the port yet, the VMM closes the socket.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

from hypercontainer.errors import AgentTimeout, DriverError

MAX_ANSWER = 64  # "OK 4294967295\n" and then some


class HandshakeRefused(DriverError):
    """The VMM closed the socket or answered something else than OK."""


def handshake(sock: socket.socket, port: int) -> int:
    """Ask the VMM for `port` on a connected socket; returns the host port it reports."""
    sock.sendall(f"CONNECT {port}\n".encode())
    line = _read_line(sock)
    words = line.split()
    if len(words) != 2 or words[0] != "OK" or not words[1].isdigit():
        raise HandshakeRefused(f"vsock port {port}: VMM answered {line!r}")
    return int(words[1])


def _read_line(sock: socket.socket) -> str:
    # Byte by byte: whatever follows the newline belongs to the guest's stream.
    data = bytearray()
    while not data.endswith(b"\n"):
        byte = sock.recv(1)
        if not byte:
            raise HandshakeRefused(f"VMM closed the connection (got {bytes(data)!r})")
        data += byte
        if len(data) > MAX_ANSWER:
            raise HandshakeRefused(f"VMM answer too long: {bytes(data[:MAX_ANSWER])!r}")
    return data.decode("ascii", "replace").rstrip("\n")


def connect(
    socket_path: Path,
    port: int,
    timeout: float,
    alive: Callable[[], bool] = lambda: True,
    retry_interval: float = 0.05,
) -> socket.socket:
    """A stream to guest `port`, retried until the guest listens or `timeout` passes.

    Nothing announces when the guest starts listening, so this retries with a
    deadline; `alive` stops it early when the VM is gone.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(remaining)
            sock.connect(str(socket_path))
            handshake(sock, port)
            sock.settimeout(None)
            return sock
        except (OSError, HandshakeRefused) as e:
            sock.close()
            last_error = e
        if not alive():
            raise DriverError(f"the VM died before its vsock port {port} answered")
        time.sleep(min(retry_interval, max(deadline - time.monotonic(), 0)))
    raise AgentTimeout(
        f"vsock port {port} via {socket_path}: no answer within {timeout:g}s ({last_error})"
    )

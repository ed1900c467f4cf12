"""How the host reaches the agent: a virtio-serial port, a vsock port, or (tests) a unix socket.

Each transport yields one `Connection` per host connection, forever: when the
host goes away (the daemon restarted) the agent waits for the next one.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator

PORT_NAME = "hc.agent"
VSOCK_PORT = 1024
READ_SIZE = 64 << 10
PORTS = "/sys/class/virtio-ports"
PORT_WAIT = 5.0  # how long virtio-serial ports may take to get their names


class Connection:
    def read(self) -> bytes:
        """Some bytes from the host; b"" once the host is gone."""
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class SocketConnection(Connection):
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def read(self) -> bytes:
        try:
            return self.sock.recv(READ_SIZE)
        except OSError:
            return b""

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class PortConnection(Connection):
    """A virtio-serial port: one device for every successive host connection.

    While no host is connected, a read returns b"" at once and a write blocks
    until a host connects.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def read(self) -> bytes:
        return os.read(self.fd, READ_SIZE)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]


def serial_connections(device: str) -> Iterator[Connection]:
    fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    port = PortConnection(fd)
    while True:
        # Blocks until a host is connected. The host skips everything before the
        # handshake, so this byte is harmless; it is the only way to wait for a
        # host here, since poll() reports a hang-up all the time none is connected.
        port.write(b"\n")
        yield port


def listener_connections(listener: socket.socket) -> Iterator[Connection]:
    while True:
        sock, _ = listener.accept()
        yield SocketConnection(sock)


def unix_listener(path: str) -> socket.socket:
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    return listener


def vsock_listener(port: int = VSOCK_PORT) -> socket.socket:
    listener = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    listener.bind((socket.VMADDR_CID_ANY, port))
    listener.listen(1)
    return listener


def find_port(name: str = PORT_NAME, wait: float = PORT_WAIT) -> str | None:
    """/dev/vportXpY of the virtio-serial port called `name`, if the VM has one.

    Ports get their names from the host shortly after they appear, and nothing
    announces it, so this looks again for a few seconds while some are unnamed.
    """
    deadline = time.monotonic() + wait
    while True:
        unnamed = False
        for port in _virtio_ports():
            try:
                with open(f"{PORTS}/{port}/name") as file:
                    port_name = file.read().strip()
            except OSError:
                continue
            if port_name == name:
                return f"/dev/{port}"
            unnamed = unnamed or not port_name
        if not unnamed or time.monotonic() > deadline:
            return None
        time.sleep(0.05)


def _virtio_ports() -> list[str]:
    try:
        return sorted(os.listdir(PORTS))
    except FileNotFoundError:
        return []


def discover() -> tuple[str, Iterator[Connection]]:
    """The guest's transport: the named virtio-serial port, else vsock."""
    device = find_port()
    if device is not None:
        return device, serial_connections(device)
    return f"vsock:{VSOCK_PORT}", listener_connections(vsock_listener())

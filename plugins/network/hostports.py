"""Is a host port free? Asked by binding it, the only answer that cannot lie.

Checked before anything starts, so a taken port is a one-line error rather
than a VMM that fails half-way through its start.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable

from hypercontainer.drivers import PortForward
from hypercontainer.errors import UserError


def check_free(forwards: Iterable[PortForward]) -> None:
    for forward in forwards:
        check_one(forward)


def check_one(forward: PortForward) -> None:
    kind = socket.SOCK_STREAM if forward.protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as probe:
        if kind == socket.SOCK_STREAM:
            # As a listener does: a connection lingering in TIME_WAIT is no conflict.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((forward.host_ip, forward.host_port))
        except OSError as e:
            raise UserError(_explain(forward, e)) from None


def _explain(forward: PortForward, error: OSError) -> str:
    where = f"{forward.host_ip}:{forward.host_port}/{forward.protocol}"
    if error.errno == errno.EADDRINUSE:
        return f"host port {where} is already in use"
    if error.errno == errno.EADDRNOTAVAIL:
        return f"host address {forward.host_ip} is not an address of this host"
    if error.errno == errno.EACCES:
        return f"host port {where} is privileged: run as root or pick a port above 1023"
    return f"host port {where}: {error.strerror}"

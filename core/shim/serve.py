"""The shim process: the Task service on the socket `start` bound, logs to the bundle's
`log` fifo (which containerd copies into its own log), until Shutdown finds no task
left or a signal ends it."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import sys
import threading
from typing import TextIO

from ..log import configure, get_logger

TASK_SERVICE = "containerd.task.v2.Task"


class FifoLog:
    """The shim's log stream, the bundle's `log` fifo: while containerd, its reader, is
    gone (killed, restarting: it opens the fifo again) a write fails with EPIPE, and the
    line is dropped, never raised into the request that logged it."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        with contextlib.suppress(OSError):
            self.stream.write(text)
            self.stream.flush()
        return len(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError):
            self.stream.flush()

    def isatty(self) -> bool:
        return False


def _log_to_fifo() -> None:
    """stderr becomes the bundle's `log` fifo, when containerd holds it open."""
    try:
        fd = os.open("log", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return
    os.set_blocking(fd, True)
    os.dup2(fd, 2)
    os.close(fd)


def serve(args: argparse.Namespace) -> int:
    _log_to_fifo()
    configure("debug" if args.debug else "info", json=True, stream=FifoLog(sys.stderr))
    # Imported once logging is set up: their module loggers bind to it as they load.
    from .events import Publisher
    from .hyperd import Hyperd
    from .protogen import shim_protos
    from .task_service import TaskService
    from .ttrpc_server import Server, service_methods

    log = get_logger(shim=args.id, namespace=args.namespace)
    protos = shim_protos()
    done = threading.Event()
    publisher = Publisher(protos, os.environ.get("TTRPC_ADDRESS", ""), args.namespace)
    service = TaskService(
        protos, Hyperd(args.config), publisher, args.namespace, args.config, on_idle=done.set
    )
    server = Server(
        protos,
        {TASK_SERVICE: service_methods(protos, TASK_SERVICE, service)},
        after_answer=service.after_answer,
    )
    listener = socket.socket(fileno=args.listen_fd)
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: done.set())
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    threading.Thread(target=server.serve, args=(listener,), daemon=True).start()
    log.info("shim serving", socket=args.socket)
    done.wait()
    publisher.flush(10.0)  # TaskDelete and the last exits must reach containerd
    server.close()
    listener.close()
    if args.socket:
        try:
            os.unlink(args.socket)
        except FileNotFoundError:
            pass
    log.info("shim done")
    return 0

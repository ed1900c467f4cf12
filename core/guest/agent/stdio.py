"""The stdio of one process, forwarded to the host through the outbox.

Without a terminal the process gets pipes (stdin only when asked for, otherwise
/dev/null) and its stdout and stderr are two streams. With a terminal it gets a
pty from crun, whose master carries both directions: one "stdout" stream.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import struct
import subprocess
import termios
import threading

from .outbox import Outbox

READ_SIZE = 64 << 10
STDIN_LIMIT = 16 << 20  # stdin bytes queued for a process that does not read


class Stdio:
    def __init__(self, outbox: Outbox, key: str, terminal: bool, stdin: bool) -> None:
        self.outbox = outbox
        self.key = key
        self.terminal = terminal
        self.wants_stdin = stdin
        self.stdin_stream: int | None = None
        self._child: list[int] = []  # the process's ends, closed once it runs
        self._outputs: list[tuple[int, str]] = []  # (fd, "stdout" | "stderr")
        self._stdin_fd: int | None = None
        self._stdin_queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._stdin_queued = 0
        self._lock = threading.Lock()
        self._master: int | None = None
        self._pumps: list[threading.Thread] = []

    def child_stdio(self) -> tuple:
        """(stdin, stdout, stderr) to hand to crun when there is no terminal."""
        if self.terminal:
            return (subprocess.DEVNULL,) * 3
        stdin = subprocess.DEVNULL
        if self.wants_stdin:
            stdin, self._stdin_fd = os.pipe()
            self._child.append(stdin)
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        self._child += [out_write, err_write]
        self._outputs = [(out_read, "stdout"), (err_read, "stderr")]
        return stdin, out_write, err_write

    def attach(self, master: int | None) -> None:
        """The process runs: announce its streams and start forwarding."""
        for fd in self._child:
            os.close(fd)
        self._child = []
        if self.terminal:
            assert master is not None
            self._master = master
            self._stdin_fd = os.dup(master)
            self._outputs = [(master, "stdout")]
        for fd, name in self._outputs:
            stream = self.outbox.open_stream(self.key, name)
            pump = threading.Thread(
                target=self._pump, args=(fd, stream), daemon=True, name=f"out-{self.key}-{name}"
            )
            pump.start()
            self._pumps.append(pump)
        if self._stdin_fd is not None:
            self.stdin_stream = self.outbox.open_stream(self.key, "stdin")
            threading.Thread(target=self._feed_stdin, daemon=True, name=f"in-{self.key}").start()

    def abandon(self) -> None:
        """The process never started: close everything."""
        for fd in self._child + [fd for fd, _ in self._outputs]:
            with contextlib.suppress(OSError):
                os.close(fd)
        if self._stdin_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._stdin_fd)
        self._child, self._outputs, self._stdin_fd = [], [], None

    def _pump(self, fd: int, stream: int) -> None:
        try:
            while True:
                try:
                    data = os.read(fd, READ_SIZE)
                except OSError:  # EIO: a pty whose other side is closed
                    break
                if not data:
                    break
                self.outbox.data(stream, data)
        finally:
            self.outbox.end_stream(stream)
            with self._lock:
                if fd == self._master:
                    self._master = None
                os.close(fd)

    def wait_drained(self, timeout: float) -> None:
        """Wait for the output streams to end; a leftover child may keep them open."""
        for pump in self._pumps:
            pump.join(timeout)

    # -- stdin --------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue bytes for the process's stdin; empty bytes close it."""
        with self._lock:
            if self._stdin_fd is None or self._stdin_queued + len(data) > STDIN_LIMIT:
                return
            self._stdin_queued += len(data)
        self._stdin_queue.put(data)

    def _feed_stdin(self) -> None:
        fd = self._stdin_fd
        assert fd is not None
        try:
            while (data := self._stdin_queue.get()) is not None:
                with self._lock:
                    self._stdin_queued -= len(data)
                if not data:
                    if self.terminal:
                        os.write(fd, b"\x04")  # a pty has no half-close: send ^D
                        continue
                    break
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
        except OSError:
            pass  # the process closed its stdin
        finally:
            with self._lock:
                self._stdin_fd = None
            os.close(fd)

    def stop_stdin(self) -> None:
        self._stdin_queue.put(None)

    def resize(self, rows: int, cols: int) -> None:
        with self._lock:
            if self._master is not None:
                with contextlib.suppress(OSError):
                    fcntl.ioctl(
                        self._master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0)
                    )

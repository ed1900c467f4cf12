"""One process's stdio: containerd's fifos on one side, a hyperd attach or exec stream on
the other (streams.py's framing: control JSON on 0, stdout/stdin on 1, stderr on 2).

Output is written to the fifos in the order hyperd sends it and the exit comes after
it, so a reader of the fifo has everything once the exit is known. containerd (ctr,
the CRI plugin) opens its ends of the fifos before it asks for the process, and may
also hand a `file://` URI (ctr --log-uri) for output.
"""

from __future__ import annotations

import errno
import json
import os
import threading
from collections.abc import Callable
from urllib.parse import unquote, urlparse

from ..api.streams import CONTROL, STDERR, STDIN, STDOUT
from ..guest.agent.protocol import Decoder, ProtocolError, encode_frame
from ..log import get_logger
from .status import Code, RpcError

log = get_logger()

Exit = Callable[[int | None, str | None], None]


def check_uri(path: str, what: str) -> None:
    """Fifo paths and file:// URIs are served; binary:// loggers and the rest are not."""
    if "://" in path and not path.startswith("file://"):
        raise RpcError(
            Code.INVALID_ARGUMENT,
            f"{what} {path[:200]!r}: only fifos and file:// URIs are supported",
        )


class ProcessIO:
    def __init__(self, stdin: str, stdout: str, stderr: str, terminal: bool) -> None:
        for path, what in ((stdin, "stdin"), (stdout, "stdout"), (stderr, "stderr")):
            check_uri(path, what)
        self.stdin_path, self.stdout_path, self.stderr_path = stdin, stdout, stderr
        self.terminal = terminal
        self._stream = None
        self._lock = threading.Lock()
        self._outputs: dict[int, int | None] = {}
        self._stdin_closed = threading.Event()
        self._stdin_started = False

    # -- output ----------------------------------------------------------------

    def run(self, stream, on_started: Callable[[], None], on_exit: Exit) -> bool:
        """Pump `stream` until the process exits (True) or the stream is cut (False)."""
        with self._lock:
            self._stream = stream
        # Both outputs opened now, written to or not: a reader (CRI's log copier, ExecSync)
        # sees the end of a stream only once a writer has come and gone.
        self._output(STDOUT)
        if not self.terminal:
            self._output(STDERR)
        decoder = Decoder()
        try:
            while data := stream.recv(65536):
                for number, payload in decoder.feed(data):
                    if number == CONTROL:
                        message = json.loads(payload)
                        if message.get("started"):
                            on_started()
                            self._start_stdin(stream)
                        elif "exit" in message:
                            self._close_outputs()
                            on_exit(message["exit"], message.get("error"))
                            return True
                    elif number in (STDOUT, STDERR) and payload:
                        self._write(number, payload)
        except (OSError, ProtocolError, ValueError) as e:
            log.info("process stream cut", error=str(e))
        finally:
            with self._lock:
                self._stream = None
            stream.close()
        return False

    def _write(self, number: int, data: bytes) -> None:
        fd = self._output(STDOUT if self.terminal else number)
        if fd is None:
            return
        try:
            os.write(fd, data) if len(data) < 4096 else _write_all(fd, data)
        except BrokenPipeError:  # the reader went away: the output has nowhere to go
            self._outputs[number] = None

    def _output(self, number: int) -> int | None:
        if number not in self._outputs:
            path = self.stdout_path if number == STDOUT else self.stderr_path
            self._outputs[number] = _open_output(path) if path else None
        return self._outputs[number]

    def _close_outputs(self) -> None:
        for fd in self._outputs.values():
            if fd is not None:
                os.close(fd)
        self._outputs = {STDOUT: None, STDERR: None}

    # -- input -------------------------------------------------------------------

    def _start_stdin(self, stream) -> None:
        # Once per process: a stream attached again (hyperd restarted) reuses the reader.
        if self.stdin_path and not self._stdin_started and not self._stdin_closed.is_set():
            self._stdin_started = True
            threading.Thread(target=self._copy_stdin, args=(stream,), daemon=True).start()

    def _copy_stdin(self, stream) -> None:
        try:
            fd = os.open(self.stdin_path, os.O_RDONLY | os.O_CLOEXEC)  # waits for the writer
        except OSError as e:
            log.info("stdin not opened", error=str(e))
            return
        try:
            while not self._stdin_closed.is_set() and (data := os.read(fd, 65536)):
                self._send(encode_frame(STDIN, data))
        except OSError as e:
            log.debug("stdin ended", error=str(e))
        finally:
            os.close(fd)
        self.close_stdin()

    def close_stdin(self) -> None:
        """The process gets end-of-file on its stdin (CloseIO, or the writer closed)."""
        self._stdin_closed.set()
        self._send(encode_frame(STDIN, b""))

    def resize(self, rows: int, cols: int) -> None:
        self._send(encode_frame(CONTROL, json.dumps({"resize": [rows, cols]}).encode()))

    def _send(self, frame: bytes) -> None:
        with self._lock:
            stream = self._stream
            if stream is None:
                return
            try:
                stream.sendall(frame)
            except OSError as e:
                log.debug("process stream gone", error=str(e))


def _open_output(path: str) -> int | None:
    if path.startswith("file://"):
        target = unquote(urlparse(path).path)
        return os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
    try:  # containerd holds the read end already; never wait for one that does not come
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        reason = "nobody reads it" if e.errno == errno.ENXIO else str(e)
        log.info("output dropped", path=path, reason=reason)
        return None
    os.set_blocking(fd, True)
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]

"""hyperctl's side of the API: HTTP over the daemon's unix socket.

Kept light on purpose: `hyperctl list` must start fast, so this speaks the
little HTTP/1.1 it needs (one request per connection) over a plain socket
instead of importing http.client, which brings email parsing and ssl along.
If no daemon listens, one is started for the user, who is told so.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from .. import paths

DAEMON_START_TIMEOUT = 60.0


class CommandError(Exception):
    """A one-line error for the user; exit code 1. `status`: hyperd's HTTP status, if
    the error is its answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _Response:
    """An answer being read: status, headers, then the body from `reader`."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")
        self.status, self.headers = _read_head(self.reader)

    def read(self) -> bytes:
        """The whole body: Content-Length bytes, or everything until the daemon closes."""
        length = self.headers.get("content-length")
        return self.reader.read(int(length)) if length is not None else self.reader.read()

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def path_of(template: str, *parts: str) -> str:
    return template.format(*(quote(p, safe="") for p in parts))


class Client:
    def __init__(self, config_file: str | None = None, autostart: bool = True) -> None:
        self.config_file = config_file
        self.socket_path = paths.socket_path(config_file)
        self.autostart = autostart
        self._checked = False

    # -- connection and daemon start -------------------------------------------

    def _connect(self) -> socket.socket:
        if not self._checked:
            self._ensure_daemon()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(self.socket_path))
        except OSError as e:
            sock.close()
            raise CommandError(f"cannot reach hyperd at {self.socket_path}: {e}") from None
        return sock

    def _listening(self) -> bool:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(self.socket_path))
            return True
        except PermissionError:  # someone else's daemon: starting another would not help
            raise CommandError(f"permission denied on hyperd's socket {self.socket_path}") from None
        except OSError:
            return False
        finally:
            probe.close()

    def _ensure_daemon(self) -> None:
        self._checked = True
        if self._listening():
            return
        if not self.autostart:
            raise CommandError(f"hyperd is not running (no socket at {self.socket_path})")
        log_path = paths.state_root(self.config_file) / "hyperd.log"
        log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        print(f"hyperd is not running; starting it (log: {log_path})", file=sys.stderr)
        command = [sys.executable, "-m", "hypercontainer.api.server"]
        if self.config_file:
            command += ["--config", self.config_file]
        with open(log_path, "ab") as log:
            start = log.tell()
            daemon = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + DAEMON_START_TIMEOUT
        racing = False  # another client started one at the same moment: wait for that one
        while not self._listening():
            if not racing and daemon.poll() is not None:
                racing = b"another hyperd is running" in _read_from(log_path, start)
                if not racing:
                    raise CommandError(f"hyperd failed to start: {_last_line(log_path)}")
            if time.monotonic() > deadline:
                raise CommandError(f"hyperd did not start within {DAEMON_START_TIMEOUT:.0f} s")
            time.sleep(0.05)  # waiting for another process to bind: nothing to wait on

    # -- requests ------------------------------------------------------------------

    def request(
        self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None
    ) -> Any:
        return self.send(method, path, body, query)()

    def send(
        self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None
    ) -> Callable[[], Any]:
        """Send a request now; the returned function waits for its answer. Once sent,
        hyperd carries it out even if hyperctl is interrupted while waiting."""
        sock = self._deliver(method, path, body, query)
        return lambda: self._answer(sock)

    def _answer(self, sock: socket.socket) -> Any:
        try:
            response = _Response(sock)
        except OSError as e:
            sock.close()
            raise CommandError(f"cannot reach hyperd at {self.socket_path}: {e}") from None
        try:
            data = response.read()
        finally:
            response.close()
        answer = _json(data)
        if response.status >= 400:
            raise CommandError(_error_text(answer, response.status), response.status)
        return answer

    def call(
        self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        """The HTTP status and the answer, errors included (for programs, not people)."""
        response = self._send(method, path, body, query)
        try:
            data = response.read()
        finally:
            response.close()
        return response.status, _json(data)

    def lines(
        self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """A streamed answer, one JSON object per line; an {"error"} line raises."""
        stream = self.stream_lines(method, path, body, query)
        try:
            yield from stream
        finally:
            stream.close()

    def stream_lines(
        self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None
    ) -> _Lines:
        """As lines(), as an object another thread may cut short (shutdown())."""
        response = self._send(method, path, body, query)
        if response.status >= 400:
            try:
                raise CommandError(
                    _error_text(_json(response.read()), response.status), response.status
                )
            finally:
                response.close()
        return _Lines(response)

    def download(self, path: str, body: Any, target: Path, shown_as: Path | None = None) -> None:
        """The answer's body into `target`; a failure to write it (a full disk) is said
        about `shown_as`, the file the user named."""
        response = self._send("POST", path, body)
        try:
            if response.status >= 400:
                raise CommandError(
                    _error_text(_json(response.read()), response.status), response.status
                )
            with open(target, "wb") as f:
                while chunk := response.reader.read(1 << 20):
                    with _writing(shown_as or target):
                        f.write(chunk)
                with _writing(shown_as or target):
                    f.flush()
        finally:
            response.close()

    def upload(self, path: str, source: Path) -> Any:
        sock = self._connect()
        with open(source, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = _head(
                "POST", path, {"Content-Type": "application/x-tar", "Content-Length": str(size)}
            )
            try:
                sock.sendall(head)
                sock.sendfile(f)
            except OSError as e:  # the daemon refused and closed early: its answer says why
                if not isinstance(e, (BrokenPipeError, ConnectionResetError)):
                    raise
        response = _Response(sock)
        try:
            answer = _json(response.read())
        finally:
            response.close()
        if response.status >= 400:
            raise CommandError(_error_text(answer, response.status), response.status)
        return answer

    def upgrade(self, path: str, body: Any = None) -> _BufferedSocket:
        """POST with `Upgrade: hc-stream`; returns the stream once the daemon switched."""
        payload = json.dumps(body or {}).encode()
        sock = self._connect()
        sock.sendall(
            _head(
                "POST",
                path,
                {
                    "Connection": "Upgrade",
                    "Upgrade": "hc-stream",
                    "Content-Type": "application/json",
                    "Content-Length": str(len(payload)),
                },
            )
            + payload
        )
        response = _Response(sock)
        if response.status == 101:
            return _BufferedSocket(sock, response.reader)
        answer = _json(response.read())
        response.close()
        raise CommandError(_error_text(answer, response.status), response.status)

    def _send(
        self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None
    ) -> _Response:
        sock = self._deliver(method, path, body, query)
        try:
            return _Response(sock)
        except OSError as e:
            sock.close()
            raise CommandError(f"cannot reach hyperd at {self.socket_path}: {e}") from None

    def _deliver(
        self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None
    ) -> socket.socket:
        """Connect and send a request; the answer is read from the socket returned."""
        if query:
            query = {k: v for k, v in query.items() if v is not None}
            if query:
                path += "?" + urlencode(query)
        payload = b"" if body is None else json.dumps(body).encode()
        headers = {"Content-Length": str(len(payload))}
        if body is not None:
            headers["Content-Type"] = "application/json"
        sock = self._connect()
        try:
            sock.sendall(_head(method, path, headers) + payload)
        except OSError as e:
            sock.close()
            raise CommandError(f"cannot reach hyperd at {self.socket_path}: {e}") from None
        return sock

    # -- resolving names -------------------------------------------------------------

    def container_or_pod(self, ref: str) -> dict[str, Any]:
        """A container by ref, or the first container of the pod `ref`."""
        try:
            return self.request("GET", path_of("/containers/{}", ref))
        except CommandError as container_error:
            try:
                pod = self.request("GET", path_of("/pods/{}", ref))
            except CommandError:
                raise container_error from None
            containers = self.request("GET", "/containers", query={"pod": pod["id"]})
            if not containers:
                raise CommandError(f"pod {pod['name']} has no container") from None
            return containers[0]


class _Lines:
    """A streamed answer's JSON lines; an {"error"} line raises."""

    def __init__(self, response: _Response) -> None:
        self.response = response

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for line in self.response.reader:
            item = json.loads(line)
            if "error" in item:
                raise CommandError(item["error"])
            yield item

    def shutdown(self) -> None:
        """End the stream from another thread: a reader blocked in it wakes up."""
        try:
            self.response.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        self.response.close()


class _BufferedSocket:
    """The upgraded connection: reads through the HTTP parser's buffer, writes directly."""

    def __init__(self, sock: socket.socket, reader) -> None:
        self.sock, self.reader = sock, reader

    def recv(self, size: int) -> bytes:
        return self.reader.read1(size)

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def shutdown(self) -> None:
        """End the stream both ways: a thread blocked reading it wakes up."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: hyperd"]
    if "Connection" not in headers:
        lines.append("Connection: close")
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _read_head(reader) -> tuple[int, dict[str, str]]:
    """The status and headers of an HTTP response, leaving the reader at its body."""
    parts = reader.readline().split(None, 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise CommandError("hyperd sent a malformed answer")
    headers = {}
    while line := reader.readline().strip():
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


def _json(data: bytes) -> Any:
    try:
        return json.loads(data) if data else None
    except ValueError:
        return None


@contextlib.contextmanager
def _writing(shown_as: Path) -> Iterator[None]:
    try:
        yield
    except OSError as e:
        raise CommandError(f"cannot write {shown_as}: {e.strerror or e}") from None


def _error_text(answer: Any, status: int) -> str:
    if isinstance(answer, dict) and "error" in answer:
        return str(answer["error"])
    return f"hyperd answered HTTP {status}"


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(1 << 16)
    except OSError:
        return b""


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "see its log"
    return lines[-1] if lines else "see its log"


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")

"""hyperctl's side of the API: HTTP over the daemon's unix socket.

Kept light on purpose (standard library only): `hyperctl list` must start
fast. If no daemon listens, one is started for the user, who is told so.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from .. import paths

DAEMON_START_TIMEOUT = 60.0


class CommandError(Exception):
    """A one-line error for the user; exit code 1."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float | None = None) -> None:
        super().__init__("hyperd", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(str(self.socket_path))


def path_of(template: str, *parts: str) -> str:
    return template.format(*(quote(p, safe="") for p in parts))


class Client:
    def __init__(self, config_file: str | None = None, autostart: bool = True) -> None:
        self.config_file = config_file
        self.socket_path = paths.socket_path(config_file)
        self.autostart = autostart
        self._checked = False

    # -- connection and daemon start -------------------------------------------

    def _connection(self) -> _UnixConnection:
        if not self._checked:
            self._ensure_daemon()
        return _UnixConnection(self.socket_path)

    def _listening(self) -> bool:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(self.socket_path))
            return True
        except PermissionError:  # someone else's daemon: starting another would not help
            raise CommandError(f"permission denied on hyperd's socket {self.socket_path}") \
                from None
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
            daemon = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                      stderr=log, start_new_session=True)
        deadline = time.monotonic() + DAEMON_START_TIMEOUT
        while not self._listening():
            if daemon.poll() is not None:
                raise CommandError(f"hyperd failed to start: {_last_line(log_path)}")
            if time.monotonic() > deadline:
                raise CommandError(f"hyperd did not start within {DAEMON_START_TIMEOUT:.0f} s")
            time.sleep(0.05)  # waiting for another process to bind: nothing to wait on

    # -- requests ------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None,
                query: dict[str, Any] | None = None, raw: bytes | None = None) -> Any:
        conn = self._connection()
        try:
            response = self._send(conn, method, path, body, query, raw)
            data = response.read()
        finally:
            conn.close()
        answer = json.loads(data) if data else None
        if response.status >= 400:
            raise CommandError(_error_text(answer, response.status))
        return answer

    def lines(self, method: str, path: str, body: Any = None,
              query: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """A streamed answer, one JSON object per line; an {"error"} line raises."""
        conn = self._connection()
        try:
            response = self._send(conn, method, path, body, query)
            if response.status >= 400:
                raise CommandError(_error_text(_json(response.read()), response.status))
            for line in response:
                item = json.loads(line)
                if "error" in item:
                    raise CommandError(item["error"])
                yield item
        finally:
            conn.close()

    def download(self, path: str, body: Any, target: Path) -> None:
        conn = self._connection()
        try:
            response = self._send(conn, "POST", path, body)
            if response.status >= 400:
                raise CommandError(_error_text(_json(response.read()), response.status))
            with open(target, "wb") as f:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
        finally:
            conn.close()

    def upload(self, path: str, source: Path) -> Any:
        conn = self._connection()
        try:
            size = source.stat().st_size
            conn.putrequest("POST", path)
            conn.putheader("Content-Type", "application/x-tar")
            conn.putheader("Content-Length", str(size))
            conn.endheaders()
            with open(source, "rb") as f:
                while chunk := f.read(1 << 20):
                    conn.send(chunk)
            response = conn.getresponse()
            answer = _json(response.read())
        finally:
            conn.close()
        if response.status >= 400:
            raise CommandError(_error_text(answer, response.status))
        return answer

    def upgrade(self, path: str, body: Any = None) -> socket.socket:
        """POST with `Upgrade: hc-stream`; returns the socket once the daemon switched."""
        if not self._checked:
            self._ensure_daemon()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(self.socket_path))
        payload = json.dumps(body or {}).encode()
        head = (f"POST {path} HTTP/1.1\r\nHost: hyperd\r\nConnection: Upgrade\r\n"
                f"Upgrade: hc-stream\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n\r\n")
        sock.sendall(head.encode() + payload)
        reader = sock.makefile("rb")
        status, headers = _read_head(reader)
        if status == 101:
            return _BufferedSocket(sock, reader)
        body = reader.read(int(headers.get("content-length", 0)))
        sock.close()
        raise CommandError(_error_text(_json(body), status))

    def _send(self, conn: _UnixConnection, method: str, path: str, body: Any = None,
              query: dict[str, Any] | None = None, raw: bytes | None = None):
        if query:
            query = {k: v for k, v in query.items() if v is not None}
            path += "?" + urlencode(query)
        headers = {}
        payload = raw
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=payload, headers=headers)
            return conn.getresponse()
        except (ConnectionError, FileNotFoundError) as e:
            raise CommandError(f"cannot reach hyperd at {self.socket_path}: {e}") from None

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


class _BufferedSocket:
    """The upgraded connection: reads through the HTTP parser's buffer, writes directly."""

    def __init__(self, sock: socket.socket, reader) -> None:
        self.sock, self.reader = sock, reader

    def recv(self, size: int) -> bytes:
        return self.reader.read1(size)

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def shutdown_write(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()


def _read_head(reader) -> tuple[int, dict[str, str]]:
    """The status and headers of an HTTP response, leaving the reader at its body."""
    parts = reader.readline().split(None, 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise CommandError("hyperd sent a malformed answer")
    headers = {}
    while (line := reader.readline().strip()):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


def _json(data: bytes) -> Any:
    try:
        return json.loads(data) if data else None
    except ValueError:
        return None


def _error_text(answer: Any, status: int) -> str:
    if isinstance(answer, dict) and "error" in answer:
        return str(answer["error"])
    return f"hyperd answered HTTP {status}"


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "see its log"
    return lines[-1] if lines else "see its log"


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")

"""HTTP/1.1 over a unix socket, byte for byte, for requests no well-behaved client sends.

hyperctl's own client cannot send a negative Content-Length or a request line
with a control character in it; this one sends exactly the bytes it is given
and reads the answer with a deadline, so a daemon that hangs fails the test
instead of the test hanging with it.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

TIMEOUT = 60.0
MAX_ANSWER = 8 << 20


class HungUpEarly(ConnectionError):
    """The daemon closed the connection while the request was still being sent (refusing
    it before reading it all); its answer, if any, was lost with the connection."""


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    # After 101 Switching Protocols: the open connection, and its reader (which may
    # already hold the first frames).
    sock: socket.socket | None = None
    reader: Any = None

    def json(self) -> Any:
        return json.loads(self.body)

    def lines(self) -> list[Any]:
        return [json.loads(line) for line in self.body.splitlines() if line.strip()]


def request_bytes(
    method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    """A request as hyperctl would frame it; `headers` may override anything, Content-Length too."""
    fields = {"Host": "hyperd", "Content-Length": str(len(body)), **(headers or {})}
    head = f"{method} {target} HTTP/1.1\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in fields.items() if value is not None)
    return head.encode("latin-1", "replace") + b"\r\n" + body


def target(path: str, query: str = "") -> str:
    return path + (f"?{query}" if query else "")


def segment(text: str) -> str:
    """A path segment carrying any text, as hyperctl quotes it."""
    return quote(text, safe="")


def send(socket_path: Path, raw: bytes, timeout: float = TIMEOUT) -> Answer:
    """Send `raw`, then read one answer (the connection is closed unless it was upgraded)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(str(socket_path))
    cut_short = False
    try:
        sock.sendall(raw)
    except (BrokenPipeError, ConnectionResetError):
        cut_short = True  # the daemon stopped reading: it may still have answered
    reader = sock.makefile("rb")
    try:
        answer = _read_answer(reader)
    except ConnectionError as e:
        sock.close()
        if cut_short:
            raise HungUpEarly("hyperd hung up before reading the whole request") from e
        raise
    except BaseException:
        sock.close()
        raise
    if answer.status == 101:
        answer.sock, answer.reader = sock, reader
        return answer
    sock.close()
    return answer


def _read_answer(reader) -> Answer:
    answer = _read_one(reader)
    while answer.status == 100:  # "100 Continue" before the real answer (Expect: 100-continue)
        answer = _read_one(reader)
    return answer


def _read_one(reader) -> Answer:
    status_line = reader.readline(65537)
    if not status_line:
        raise ConnectionError("hyperd closed the connection without answering")
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        # An HTTP/0.9 answer (to a request line without a version): the body alone.
        return Answer(0, {}, status_line + reader.read(MAX_ANSWER))
    headers: dict[str, str] = {}
    while line := reader.readline(65537).strip():
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    status = int(parts[1])
    if status in (100, 101):
        return Answer(status, headers)
    if "content-length" in headers:
        body = reader.read(int(headers["content-length"]))
    else:  # streamed answers (lines, raw) end when the daemon closes the connection
        body = reader.read(MAX_ANSWER)
    return Answer(status, headers, body)


def finish_stream(answer: Answer, timeout: float = TIMEOUT) -> dict[str, Any]:
    """Close an upgraded stream's stdin and read to its exit message (stream 0)."""
    from hypercontainer.api.streams import CONTROL, STDIN
    from hypercontainer.guest.agent.protocol import Decoder, encode_frame

    assert answer.sock is not None, "not an upgraded answer"
    answer.sock.settimeout(timeout)
    try:
        answer.sock.sendall(encode_frame(STDIN, b""))
        decoder = Decoder()
        while data := answer.reader.read1(65536):
            for stream, payload in decoder.feed(data):
                if stream == CONTROL:
                    return json.loads(payload)
        raise AssertionError("the stream ended without an exit message")
    finally:
        answer.sock.close()

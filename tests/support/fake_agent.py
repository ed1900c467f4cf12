"""A guest agent played by a test, speaking the real framing (core/guest/agent/protocol.py),
to drive the host side (core/agent/client.py, core/pod_session.py, the runtime) into
everything a hostile or broken guest can do: bad frames, floods, stray replies and
events, silence, a connection cut in the middle of a frame.

It answers the handshake exactly as the real agent's server does (SYNC, then the
reply carrying the host's nonce back) and every request with `ok`, unless the
test's `answer` says otherwise. It can honour the host's flow control (hold at
most `window` bytes of output unacknowledged, as the real outbox does) or not.
(At the runtime's level, hypercontainer.testing's FakeGuest plays the agent, with the
real agent server; its `write_raw` sends what that server never would.)
"""

from __future__ import annotations

import queue
import socket
import threading
from collections.abc import Callable
from typing import Any

from hypercontainer.guest.agent import protocol
from hypercontainer.guest.agent.server import is_hello
from hypercontainer.guest.agent.transport import SocketConnection

Answer = Callable[["FakeAgent", dict], dict | None]  # the reply, or None: no answer
WINDOW = 8 << 20  # the real outbox's limit of unacknowledged output


def ok(agent: FakeAgent, request: dict) -> dict | None:
    """The answers of a guest where everything works."""
    result: Any = {}
    if request["op"] == "state":
        result = {"containers": dict(agent.containers), "hostname": "fake"}
    elif request["op"] == "start_container":
        agent.containers[request["container"]] = {"status": "running", "pid": 7, "code": None}
    elif request["op"] == "signal" and request.get("exec") is None:
        container = agent.containers.get(request["container"])
        if container and container["status"] == "running":  # every signal ends it
            container.update(status="exited", code=128 + request["signal"])
            agent.exit(request["container"], container["code"])
    return {"reply": request["id"], "ok": True, "result": result}


class FakeAgent:
    def __init__(
        self, sock: socket.socket, answer: Answer = ok, window: int | None = WINDOW
    ) -> None:
        self.connection = SocketConnection(sock)  # the real agent's own transport
        self.answer = answer
        self.window = window  # None: send output regardless of acknowledgements
        self.requests: queue.Queue[dict] = queue.Queue()
        self.containers: dict[str, dict] = {}
        self.connected = threading.Event()  # the handshake was answered
        self._sent = 0  # numbered frames sent: events and output
        self._sizes: dict[int, int] = {}  # output frame number -> bytes, until acknowledged
        self._acked = 0
        self._unacked_bytes = 0
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._streams = 0
        self.reader = threading.Thread(target=self._read, daemon=True, name="fake-agent")
        self.reader.start()

    # -- what the test makes it send ------------------------------------------

    def raw(self, data: bytes) -> None:
        """Bytes on the wire as they are, framed or not."""
        with self._send_lock:
            self.connection.write(data)

    def message(self, message: dict) -> None:
        """A control frame; counted as numbered (event) unless it is a reply."""
        if "reply" not in message:
            self._count(0)
        self.raw(protocol.encode_message(message))

    def event(self, **fields: Any) -> None:
        self.message(fields)

    def exit(self, container: str, code: Any = 0, exec_id: str | None = None) -> None:
        self.event(
            event="exit",
            key=protocol.process_key(container, exec_id),
            container=container,
            exec=exec_id,
            code=code,
        )

    def open_stream(self, key: str, fd: str = "stdout") -> int:
        self._streams += 1
        self.event(event="stream", stream=self._streams, key=key, fd=fd)
        return self._streams

    def output(self, stream: int, data: bytes) -> None:
        """Output in chunks as the real agent sends it, waiting for acknowledgements
        while `window` bytes are unacknowledged (unless window is None)."""
        for start in range(0, max(len(data), 1), protocol.DATA_CHUNK):
            chunk = data[start : start + protocol.DATA_CHUNK]
            with self._cond:
                while (
                    self.window is not None
                    and self._unacked_bytes
                    and self._unacked_bytes + len(chunk) > self.window
                ):
                    if not self._cond.wait(60):
                        raise TimeoutError("the host acknowledged nothing for 60 s")
            self._count(len(chunk))
            self.raw(protocol.encode_frame(stream, chunk))

    def close(self) -> None:
        self.connection.close()

    @property
    def unacknowledged(self) -> int:
        """Bytes of output the host has not acknowledged."""
        with self._cond:
            return self._unacked_bytes

    # -- plumbing ---------------------------------------------------------------

    def _count(self, size: int) -> None:
        with self._cond:
            self._sent += 1
            self._sizes[self._sent] = size
            self._unacked_bytes += size

    def _acknowledge(self, seq: int) -> None:
        with self._cond:
            for number in range(self._acked + 1, min(seq, self._sent) + 1):
                self._unacked_bytes -= self._sizes.pop(number, 0)
            self._acked = max(self._acked, seq)
            self._cond.notify_all()

    def _read(self) -> None:
        decoder = protocol.Decoder(accept=is_hello)
        try:
            while data := self.connection.read():
                for stream, payload in decoder.feed(data):
                    if stream != protocol.CONTROL:
                        continue  # stdin
                    message = protocol.decode_message(payload)
                    if message.get("op") == "hello":
                        self._hello(message)
                    elif isinstance(message.get("ack"), int):
                        self._acknowledge(message["ack"])
                    elif "op" in message:
                        self.requests.put(message)
                        reply = self.answer(self, message)
                        if reply is not None:
                            self.message(reply)
        except (OSError, protocol.ProtocolError):
            pass

    def _hello(self, hello: dict) -> None:
        result = {
            "nonce": hello["nonce"],
            "version": protocol.VERSION,
            "streams": [],
            "seq": self._sent + 1,
        }
        self.raw(
            protocol.SYNC
            + protocol.encode_message({"reply": hello["id"], "ok": True, "result": result})
        )
        self.connected.set()

"""Sessions with the host: the handshake, reading frames, answering requests.

Requests run in threads of their own, so that a slow one (mounting, starting a
container) never holds up the others or the stdin that keeps arriving.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Iterable

from . import protocol
from .errors import Failure
from .handlers import Handlers
from .log import log
from .outbox import Outbox, Session
from .safepath import PathError
from .transport import Connection

FLUSH_TIMEOUT = 10.0  # at power-off, how long the last replies may take to leave


def is_hello(stream: int, payload: bytes) -> bool:
    if stream != protocol.CONTROL:
        return False
    try:
        message = protocol.decode_message(payload)
    except protocol.ProtocolError:
        return False
    return message.get("op") == "hello" and isinstance(message.get("id"), int)


def error_message(exc: BaseException) -> str:
    """One line for the host, whatever went wrong."""
    if isinstance(exc, (Failure, PathError)):
        text = str(exc)
    elif isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror + (f": {exc.filename}" if exc.filename else "")
    else:
        text = f"internal error: {type(exc).__name__}: {exc}"
    return " ".join(text.split()) or type(exc).__name__


class Server:
    def __init__(self, handlers: Handlers, outbox: Outbox) -> None:
        self.handlers = handlers
        self.outbox = outbox
        self.finished = threading.Event()  # destroy_pod answered: time to power off

    def serve(self, connections: Iterable[Connection]) -> None:
        """Serve host connections one after the other, forever (run it in a thread)."""
        threading.Thread(target=self.outbox.run_writer, daemon=True, name="writer").start()
        for connection in connections:
            self._session(connection)

    def wait_finished(self) -> None:
        """Return once destroy_pod has been answered and the answer has left."""
        self.finished.wait()
        self.outbox.flush(FLUSH_TIMEOUT)

    def _session(self, connection: Connection) -> None:
        decoder = protocol.Decoder(accept=is_hello, resync=True)
        session: Session | None = None
        try:
            while data := connection.read():
                for stream, payload in decoder.feed(data):
                    if is_hello(stream, payload):
                        # A new host: on a virtio-serial port it may follow the
                        # previous one without the guest seeing a hang-up.
                        session = self._handshake(connection, payload)
                    elif session is None:
                        continue
                    elif stream == protocol.CONTROL:
                        self._control(session, payload)
                    else:
                        self.handlers.runtime.write_stdin(stream, payload)
        finally:
            if session is not None:
                self.outbox.end(session)
            connection.close()

    def _handshake(self, connection: Connection, payload: bytes) -> Session:
        hello = protocol.decode_message(payload)
        result = {"nonce": hello.get("nonce"), "version": protocol.VERSION}
        return self.outbox.begin(
            connection.write, {"reply": hello["id"], "ok": True, "result": result}
        )

    def _control(self, session: Session, payload: bytes) -> None:
        try:
            message = protocol.decode_message(payload)
        except protocol.ProtocolError as exc:
            log("ignoring a control frame", error=str(exc))
            return
        if isinstance(message.get("ack"), int):
            self.outbox.acknowledge(message["ack"])
            return
        request_id, op = message.get("id"), message.get("op")
        if not isinstance(request_id, int) or not isinstance(op, str):
            log("ignoring a request without id or op")
            return
        threading.Thread(
            target=self._answer,
            args=(session, request_id, op, message),
            daemon=True,
            name=f"req-{op}",
        ).start()

    def _answer(self, session: Session, request_id: int, op: str, message: dict) -> None:
        try:
            result = self.handlers.dispatch(op, message)
            reply = {"reply": request_id, "ok": True, "result": result}
        except Exception as exc:  # noqa: BLE001 - any failure is answered, as one line
            if not isinstance(exc, (Failure, PathError, OSError)):
                traceback.print_exc()
            reply = {"reply": request_id, "ok": False, "error": error_message(exc)}
        self.outbox.reply(session, reply)
        if op == "destroy_pod":
            self.finished.set()

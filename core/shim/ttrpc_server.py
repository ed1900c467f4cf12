"""A ttrpc server: unary requests, dispatched by service and method name to handlers.

Each connection has one reader; each request runs in its own thread (containerd
keeps a `Wait` open while it sends `Kill` on the same connection), up to
MAX_IN_FLIGHT per connection. Whatever a peer sends, the answer is a Response
with a gRPC status on that stream, or, for bytes that are not ttrpc at all, the
end of that one connection: the server goes on serving every other.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..log import get_logger
from . import ttrpc_frame as frames
from .protogen import Protos
from .status import Code, RpcError

log = get_logger()

MAX_IN_FLIGHT = 128


@dataclass(frozen=True)
class Method:
    request: Any  # message classes, made at run time (protogen.py)
    response: Any
    handler: Callable[[Any], Any]


def service_methods(protos: Protos, service: str, implementation: object) -> dict[str, Method]:
    """The methods of `service` (a full protobuf name) bound to the same-named attributes
    of `implementation`; a method it lacks answers Unimplemented."""
    methods = {}
    for name, descriptor in protos.service(service).methods_by_name.items():
        handler = getattr(implementation, name, None)
        if handler is None:
            continue
        methods[name] = Method(
            protos.message(descriptor.input_type.full_name),
            protos.message(descriptor.output_type.full_name),
            handler,
        )
    return methods


class Server:
    def __init__(
        self,
        protos: Protos,
        services: dict[str, dict[str, Method]],
        after_answer: Callable[[str], None] | None = None,
    ) -> None:
        self.services = services
        self.after_answer = after_answer  # called with the method's name once answered
        self._request = protos.message("ttrpc.Request")
        self._response = protos.message("ttrpc.Response")
        self._closing = threading.Event()
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    def serve(self, listener: socket.socket) -> None:
        """Accept connections until close(); each is served by its own thread."""
        while not self._closing.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                if self._closing.is_set():
                    return
                raise
            with self._lock:
                self._connections.add(connection)
            threading.Thread(target=self._serve_connection, args=(connection,), daemon=True).start()

    def close(self) -> None:
        self._closing.set()
        with self._lock:
            for connection in self._connections:
                _shutdown(connection)

    def _serve_connection(self, connection: socket.socket) -> None:
        writer = _Writer(connection, self._response)
        reader = connection.makefile("rb")
        try:
            while frame := self._next_frame(reader, writer):
                self._dispatch(frame, writer)
        except frames.FrameError as e:
            log.info("ttrpc connection dropped", reason=str(e))
        except OSError as e:
            log.debug("ttrpc connection ended", reason=str(e))
        finally:
            reader.close()
            with self._lock:
                self._connections.discard(connection)
            _shutdown(connection)
            connection.close()

    def _next_frame(self, reader, writer: _Writer) -> frames.Frame | None:
        while True:
            try:
                return frames.read_frame(reader)
            except frames.FrameTooLarge as e:  # the data was skipped: tell the caller, go on
                writer.fail(e.stream_id, RpcError(Code.RESOURCE_EXHAUSTED, str(e)))

    def _dispatch(self, frame: frames.Frame, writer: _Writer) -> None:
        if frame.stream_id % 2 != 1:
            writer.fail(
                frame.stream_id,
                RpcError(Code.INVALID_ARGUMENT, "stream ids of client requests must be odd"),
            )
            return
        if frame.kind != frames.REQUEST:
            writer.fail(
                frame.stream_id,
                RpcError(
                    Code.UNIMPLEMENTED, f"message type {frame.kind}: only unary requests are served"
                ),
            )
            return
        try:
            request = self._request.FromString(frame.data)
            method = self._method(request.service, request.method)
            argument = method.request.FromString(request.payload)
        except RpcError as e:
            writer.fail(frame.stream_id, e)
            return
        except Exception as e:  # noqa: BLE001 - protobuf's DecodeError, or worse: the bytes are not a request
            writer.fail(frame.stream_id, RpcError(Code.INVALID_ARGUMENT, f"malformed request: {e}"))
            return
        if not writer.begin():
            writer.fail(
                frame.stream_id,
                RpcError(Code.RESOURCE_EXHAUSTED, f"more than {MAX_IN_FLIGHT} requests in flight"),
            )
            return
        threading.Thread(
            target=self._run, args=(frame.stream_id, request, method, argument, writer), daemon=True
        ).start()

    def _method(self, service: str, name: str) -> Method:
        methods = self.services.get(service)
        if methods is None:
            raise RpcError(Code.UNIMPLEMENTED, f"service {service[:200]!r} is not served here")
        method = methods.get(name)
        if method is None:
            raise RpcError(Code.UNIMPLEMENTED, f"{service}: no method {name[:200]!r}")
        return method

    def _run(self, stream_id: int, request, method: Method, argument, writer: _Writer) -> None:
        try:
            result = method.handler(argument)
            writer.answer(stream_id, result.SerializeToString())
            if self.after_answer:
                self.after_answer(request.method)
        except RpcError as e:
            log.info(
                "ttrpc request refused", method=request.method, code=e.code.name, error=e.message
            )
            writer.fail(stream_id, e)
        except Exception as e:  # a bug: the caller learns of it, the server goes on
            log.exception("ttrpc handler failed", method=request.method)
            writer.fail(stream_id, RpcError(Code.INTERNAL, f"{type(e).__name__}: {e}"))
        finally:
            writer.end()


class _Writer:
    """Responses of one connection, written whole, one at a time."""

    def __init__(self, connection: socket.socket, response_class: type) -> None:
        self.connection = connection
        self.response_class = response_class
        self._lock = threading.Lock()
        self._in_flight = 0

    def begin(self) -> bool:
        with self._lock:
            if self._in_flight >= MAX_IN_FLIGHT:
                return False
            self._in_flight += 1
            return True

    def end(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def answer(self, stream_id: int, payload: bytes) -> None:
        self._send(stream_id, self.response_class(payload=payload))

    def fail(self, stream_id: int, error: RpcError) -> None:
        response = self.response_class()
        response.status.code = int(error.code)
        response.status.message = error.message[:4096]
        self._send(stream_id, response)

    def _send(self, stream_id: int, response) -> None:
        data = response.SerializeToString()
        if len(data) > frames.MAX_DATA:
            response = self.response_class()
            response.status.code = int(Code.RESOURCE_EXHAUSTED)
            response.status.message = "the response exceeds the maximum message size"
            data = response.SerializeToString()
        message = frames.encode(stream_id, frames.RESPONSE, data)
        with self._lock:
            try:
                self.connection.sendall(message)
            except OSError as e:  # the peer left; its reader ends the connection
                log.debug("ttrpc response not delivered", reason=str(e))


def _shutdown(connection: socket.socket) -> None:
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass

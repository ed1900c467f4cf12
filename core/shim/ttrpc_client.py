"""A ttrpc client: unary calls over one unix socket, any number of them at once.

The shim uses it to forward events to containerd (`TTRPC_ADDRESS`); tests use it to
speak to the shim as containerd does.
"""

from __future__ import annotations

import itertools
import socket
import threading

from . import ttrpc_frame as frames
from .protogen import Protos
from .status import Code, RpcError


class ConnectionClosed(RpcError):
    def __init__(self, reason: str) -> None:
        super().__init__(Code.UNAVAILABLE, f"ttrpc connection closed: {reason}")


def unix_path(address: str) -> str:
    """`unix:///run/x.sock` or a bare path -> the path."""
    return address.removeprefix("unix://")


class Client:
    def __init__(self, protos: Protos, address: str, timeout: float = 10.0) -> None:
        self.protos = protos
        self._request = protos.message("ttrpc.Request")
        self._response = protos.message("ttrpc.Response")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(unix_path(address))
        except OSError:
            self.sock.close()
            raise
        self.sock.settimeout(None)
        self._ids = itertools.count(1, 2)
        self._pending: dict[int, list] = {}  # stream id -> [event, response or error]
        self._lock = threading.Lock()
        self._closed: str | None = None
        threading.Thread(target=self._read, daemon=True).start()

    def call(self, service: str, method: str, request, timeout: float | None = None):
        """The method's response message; an RpcError for a non-OK status."""
        descriptor = self.protos.service(service).methods_by_name[method]
        answer_class = self.protos.message(descriptor.output_type.full_name)
        payload = self._request(service=service, method=method, payload=request.SerializeToString())
        if timeout:
            payload.timeout_nano = int(timeout * 1e9)
        response = self._roundtrip(payload.SerializeToString(), timeout)
        if response.status.code != 0:
            raise RpcError(Code(response.status.code), response.status.message)
        return answer_class.FromString(response.payload)

    def _roundtrip(self, data: bytes, timeout: float | None):
        done = threading.Event()
        with self._lock:
            if self._closed:
                raise ConnectionClosed(self._closed)
            stream_id = next(self._ids)
            slot = self._pending[stream_id] = [done, None]
            try:
                self.sock.sendall(frames.encode(stream_id, frames.REQUEST, data))
            except OSError as e:
                del self._pending[stream_id]
                raise ConnectionClosed(str(e)) from None
        if not done.wait(timeout):
            with self._lock:
                self._pending.pop(stream_id, None)
            raise RpcError(Code.DEADLINE_EXCEEDED, f"no answer within {timeout} s")
        if isinstance(slot[1], Exception):
            raise slot[1]
        return slot[1]

    def _read(self) -> None:
        reader = self.sock.makefile("rb")
        reason = "the server hung up"
        try:
            while frame := frames.read_frame(reader):
                with self._lock:
                    slot = self._pending.pop(frame.stream_id, None)
                if slot is not None and frame.kind == frames.RESPONSE:
                    slot[1] = self._response.FromString(frame.data)
                    slot[0].set()
        except (OSError, frames.FrameError) as e:
            reason = str(e)
        except Exception as e:  # noqa: BLE001 - an answer that is not a ttrpc Response
            reason = f"malformed response: {e}"
        finally:
            reader.close()
            self._fail_all(reason)

    def _fail_all(self, reason: str) -> None:
        with self._lock:
            self._closed = reason
            pending, self._pending = self._pending, {}
        for slot in pending.values():
            slot[1] = ConnectionClosed(reason)
            slot[0].set()

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

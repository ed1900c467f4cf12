"""The host's end of the guest agent protocol: requests, events and stdio over one socket.

One reader thread decodes everything the agent sends. Replies wake the thread
that made the request; events and process output go to the callbacks given at
construction, called from the reader thread: they must be quick and must not
call the client back (a request from a callback would wait for the reader that
is running it, so it raises instead).
"""

from __future__ import annotations

import base64
import itertools
import secrets
import socket
import struct
import threading
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import AgentError, AgentTimeout
from ..guest.agent import protocol
from ..log import get_logger

EventCallback = Callable[[dict], None]
OutputCallback = Callable[[str, str, bytes], None]  # key, "stdout" | "stderr", data (b"" = EOF)

DEFAULT_TIMEOUT = 30.0
SLOW_TIMEOUT = 120.0  # mounting, starting crun, tearing down: slow under TCG
FILE_CHUNK = 256 << 10  # raw bytes per write_file request (base64 keeps it under a frame)
READ_LIMIT = 64 << 20
SEND_TIMEOUT = 30.0  # seconds a write may wait for a guest that takes nothing


class _Call:
    __slots__ = ("op", "done", "reply")

    def __init__(self, op: str) -> None:
        self.op = op
        self.done = threading.Event()
        self.reply: dict | None = None


class AgentClient:
    def __init__(
        self,
        sock: socket.socket,
        on_event: EventCallback,
        on_output: OutputCallback,
        send_timeout: float = SEND_TIMEOUT,
        **log_context: Any,
    ) -> None:
        self._sock = sock
        # A hung guest stops taking bytes: a send must fail then, not block for ever.
        self._send_timeout = send_timeout
        seconds, fraction = divmod(send_timeout, 1)
        sock.setsockopt(
            socket.SOL_SOCKET,
            socket.SO_SNDTIMEO,
            struct.pack("ll", int(seconds), int(fraction * 1e6)),
        )
        self._on_event = on_event
        self._on_output = on_output
        self._log = get_logger(**log_context)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()  # guards the tables below
        self._send_lock = threading.Lock()
        self._pending: dict[int, _Call] = {}
        self._outputs: dict[int, tuple[str, str]] = {}  # stream -> (key, fd)
        self._deliveries: list[tuple[Callable, tuple]] = []  # callbacks of the current read
        self._stdin: dict[str, int] = {}  # key -> stdin stream
        self.closed = threading.Event()
        self.agent_version: int | None = None
        # The agent numbers its events and output frames; we acknowledge what we
        # have, and it sends what we did not acknowledge again to a new client.
        self._received = 0
        self._acknowledged = 0

        self._nonce = secrets.token_hex(16)
        self._hello = _Call("hello")
        self._hello_id = next(self._ids)
        self._pending[self._hello_id] = self._hello
        self._decoder = protocol.Decoder(accept=self._is_our_handshake)
        self._reader = threading.Thread(target=self._read, daemon=True, name="agent-reader")
        self._reader.start()
        hello = {"id": self._hello_id, "op": "hello", "nonce": self._nonce}
        self._send(protocol.SYNC + protocol.encode_message(hello))

    # -- lifecycle ----------------------------------------------------------

    def wait_ready(self, timeout: float) -> None:
        """Wait for the agent's handshake (the VM may still be booting)."""
        self._wait(self._hello, timeout)

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        if threading.current_thread() is not self._reader:
            self._reader.join(5)

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- requests -----------------------------------------------------------

    def ping(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._call("ping", timeout)

    def start_pod(
        self,
        hostname: str,
        dns: Iterable[str] = (),
        dns_search: Iterable[str] = (),
        dns_options: Iterable[str] = (),
        interface: dict | None = None,
        sysctl: dict[str, str] | None = None,
        entropy: bytes = b"",
        clock_ns: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> dict:
        """Host name, resolver and hosts files, the NIC ({"mac", "address", "gateway"}),
        and what makes a VM cloned from a template its own machine: `entropy` mixed into
        its random pool, `clock_ns` (the host's wall clock) set as its time."""
        machine: dict[str, Any] = (
            {"entropy_b64": base64.b64encode(entropy).decode()} if entropy else {}
        )
        if clock_ns is not None:
            machine["clock_ns"] = clock_ns
        return self._call(
            "start_pod",
            timeout,
            hostname=hostname,
            dns=list(dns),
            dns_search=list(dns_search),
            dns_options=list(dns_options),
            interface=interface,
            sysctl=dict(sysctl or {}),
            **machine,
        )

    def create_container(self, config: dict, timeout: float = SLOW_TIMEOUT) -> None:
        """Prepare a container's root filesystem and bundle (format in docs/guest.md)."""
        self._call("create_container", timeout, config=config)

    def start_container(self, cid: str, timeout: float = SLOW_TIMEOUT) -> None:
        self._call("start_container", timeout, container=cid)

    def signal(
        self, cid: str, signum: int, exec_id: str | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self._call("signal", timeout, container=cid, signal=int(signum), exec=exec_id)

    def exec(
        self,
        cid: str,
        exec_id: str,
        args: list[str],
        env: list[str] | None = None,
        cwd: str | None = None,
        user: str | None = None,
        terminal: bool = False,
        stdin: bool = False,
        timeout: float = SLOW_TIMEOUT,
    ) -> str:
        """Start a process in a running container; returns its key for stdio and events."""
        self._call(
            "exec",
            timeout,
            container=cid,
            exec=exec_id,
            args=list(args),
            env=list(env or []),
            cwd=cwd,
            user=user,
            terminal=terminal,
            stdin=stdin,
        )
        return protocol.process_key(cid, exec_id)

    def write_stdin(self, key: str, data: bytes) -> None:
        stream = self._stdin_stream(key)
        for start in range(0, len(data), protocol.DATA_CHUNK):
            self._send(protocol.encode_frame(stream, data[start : start + protocol.DATA_CHUNK]))

    def close_stdin(self, key: str) -> None:
        stream = self._stdin_stream(key)
        with self._lock:
            self._stdin.pop(key, None)
        self._send(protocol.encode_frame(stream, b""))

    def resize(self, key: str, rows: int, cols: int, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._call("resize", timeout, key=key, rows=rows, cols=cols)

    def write_file(
        self, cid: str, path: str, data: bytes, mode: int = 0o644, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        """Write a file inside the container (as it sees its filesystem)."""
        for start in range(0, max(len(data), 1), FILE_CHUNK):
            chunk = data[start : start + FILE_CHUNK]
            self._call(
                "write_file",
                timeout,
                container=cid,
                path=path,
                mode=mode,
                append=start > 0,
                data_b64=base64.b64encode(chunk).decode(),
            )

    def read_file(
        self, cid: str, path: str, limit: int = READ_LIMIT, timeout: float = DEFAULT_TIMEOUT
    ) -> bytes:
        data = bytearray()
        while True:
            result = self._call("read_file", timeout, container=cid, path=path, offset=len(data))
            data += base64.b64decode(result["data_b64"])
            if len(data) > limit:
                raise AgentError(f"{path}: larger than {limit} bytes")
            if result["eof"]:
                return bytes(data)

    def remove_container(self, cid: str, timeout: float = SLOW_TIMEOUT) -> None:
        self._call("remove_container", timeout, container=cid)

    def state(self, timeout: float = DEFAULT_TIMEOUT) -> dict:
        """{"containers": {cid: {"status", "code", "pid", "execs": {id: {...}}}}, "hostname"}."""
        return self._call("state", timeout)

    def destroy_pod(self, timeout: float = SLOW_TIMEOUT) -> None:
        """Stop every container; the VM powers off after answering."""
        self._call("destroy_pod", timeout)

    # -- plumbing -----------------------------------------------------------

    def _stdin_stream(self, key: str) -> int:
        with self._lock:
            stream = self._stdin.get(key)
        if stream is None:
            raise AgentError(f"process {key} has no open stdin")
        return stream

    def _call(self, op: str, timeout: float, **args: Any) -> Any:
        if threading.current_thread() is self._reader:
            raise RuntimeError("agent client called from its own callback")
        call = _Call(op)
        with self._lock:
            request_id = next(self._ids)
            self._pending[request_id] = call
        try:
            self._send(protocol.encode_message({**args, "id": request_id, "op": op}))
            return self._wait(call, timeout)
        finally:
            with self._lock:
                self._pending.pop(request_id, None)

    def _wait(self, call: _Call, timeout: float) -> Any:
        if not call.done.wait(timeout):
            raise AgentTimeout(f"guest agent did not answer {call.op} within {timeout:g} s")
        reply = call.reply
        if reply is None:
            raise AgentError(f"guest agent connection closed during {call.op}")
        if not reply.get("ok"):
            raise AgentError(str(reply.get("error") or f"{call.op} failed"))
        return reply.get("result")

    def _send(self, data: bytes) -> None:
        if self.closed.is_set():
            raise AgentError("guest agent connection closed")
        try:
            with self._send_lock:
                self._sock.sendall(data)
        except (BlockingIOError, TimeoutError):
            self.close()  # part of a frame may have gone: the stream is unusable now
            raise AgentTimeout(f"guest agent took nothing for {self._send_timeout:g} s") from None
        except OSError as exc:
            raise AgentError(f"guest agent connection lost: {exc}") from None

    def _send_quietly(self, data: bytes) -> None:
        try:
            self._send(data)
        except AgentError:
            pass  # closing: the reader sees the end next

    def _is_our_handshake(self, stream: int, payload: bytes) -> bool:
        try:
            message = protocol.decode_message(payload)
        except protocol.ProtocolError:
            return False
        result = message.get("result")
        return (
            stream == protocol.CONTROL
            and message.get("reply") == self._hello_id
            and isinstance(result, dict)
            and result.get("nonce") == self._nonce
        )

    # -- the reader thread --------------------------------------------------

    def _read(self) -> None:
        try:
            while data := self._sock.recv(1 << 16):
                for stream, payload in self._decoder.feed(data):
                    if stream == protocol.CONTROL:
                        self._control(protocol.decode_message(payload))
                    else:
                        self._received += 1
                        self._output(stream, payload)
                # Acknowledge before the callbacks run: whatever a callback's reader
                # asks the agent next is then sure to follow the acknowledgement.
                if self._received != self._acknowledged:
                    self._acknowledged = self._received
                    self._send_quietly(protocol.encode_message({"ack": self._received}))
                deliveries, self._deliveries = self._deliveries, []
                for callback, args in deliveries:
                    self._callback(callback, *args)
        except protocol.ProtocolError as exc:
            self._log.error("agent protocol error", error=str(exc))
        except OSError:
            pass
        finally:
            self.closed.set()
            with self._lock:
                calls = list(self._pending.values())
                self._pending.clear()
            for call in calls:
                call.done.set()

    def _control(self, message: dict) -> None:
        if "reply" in message:
            if message["reply"] == self._hello_id:
                self._handshake(message.get("result") or {})
            with self._lock:
                call = self._pending.pop(message["reply"], None)
            if call is not None:
                call.reply = message
                call.done.set()
            return
        self._received += 1
        if message.get("event") == "stream":
            self._announce(message)
            return
        if message.get("event") == "exit":
            with self._lock:
                self._stdin.pop(str(message.get("key")), None)
        self._deliveries.append((self._on_event, (message,)))

    def _handshake(self, result: dict) -> None:
        self.agent_version = result.get("version")
        self._received = self._acknowledged = int(result.get("seq", 1)) - 1
        for entry in result.get("streams") or []:
            self._announce(entry)

    def _announce(self, entry: dict) -> None:
        stream, key, fd = entry.get("stream"), entry.get("key"), entry.get("fd")
        if not isinstance(stream, int) or not isinstance(key, str) or not isinstance(fd, str):
            self._log.warning("malformed stream announcement", entry=entry)
            return
        with self._lock:
            if fd == "stdin":
                self._stdin[key] = stream
            else:
                self._outputs[stream] = (key, fd)

    def _output(self, stream: int, data: bytes) -> None:
        with self._lock:
            owner = self._outputs.get(stream) if data else self._outputs.pop(stream, None)
        if owner is None:
            self._log.debug("output on an unknown stream", stream=stream)  # e.g. resent
            return
        self._deliveries.append((self._on_output, (*owner, data)))

    def _callback(self, callback: Callable, *args: Any) -> None:
        try:
            callback(*args)
        except Exception:  # noqa: BLE001 - a callback's bug must not stop the reader
            self._log.exception("agent client callback failed")

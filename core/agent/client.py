"""The host's end of the guest agent protocol: requests, events and stdio over one socket.

One reader thread decodes everything the agent sends. Replies wake the thread
that made the request; events and process output go to the callbacks given at
construction, called in order from a delivery thread (deliveries.py); a reply
wakes its waiter once what the agent sent before it is queued there. A
callback must not call the client back (it raises instead): a request from it
would hold up every delivery behind it.

The guest is not trusted. Whatever it sends is checked before use; what breaks
the protocol (a frame that is not one, an oversized frame, a malformed reply,
output beyond flow control, a connection cut in the middle of a frame) ends the
connection, and `failure` says why. Oddities a correct agent may cause (a reply
that comes after its request timed out, output of a stream a new connection
does not know) are ignored and counted, and so is everything else the host
has no use for; logging them is rate-limited.
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
from .deliveries import BacklogExceeded, Deliveries, Delivery

EventCallback = Callable[[dict], None]
OutputCallback = Callable[[str, str, bytes], None]  # key, "stdout" | "stderr", data (b"" = EOF)
TimeoutCallback = Callable[[str, float], None]  # op, seconds waited

DEFAULT_TIMEOUT = 30.0
SLOW_TIMEOUT = 120.0  # mounting, starting crun, tearing down: slow under TCG
FILE_CHUNK = 256 << 10  # raw bytes per write_file request (base64 keeps it under a frame)
READ_LIMIT = 64 << 20
SEND_TIMEOUT = 30.0  # seconds a write may wait for a guest that takes nothing
# Output the daemon has not delivered yet: beyond OUTPUT_HOLD bytes it stops
# acknowledging (the agent holds at most 8 MiB unacknowledged, then its producers
# wait); beyond BACKLOG_LIMIT the guest is ignoring that, which ends the connection.
OUTPUT_HOLD = 1 << 20
BACKLOG_LIMIT = 32 << 20
MAX_STREAMS = 4096  # open streams one guest may announce
ERROR_CHARS = 300  # of a guest's error message, shown to the user as one line
ODDITIES_LOGGED = 10  # then only every ODDITIES_EVERY-th is logged
ODDITIES_EVERY = 1000
FD_NAMES = ("stdin", "stdout", "stderr")
CLOSE_WAIT = 5.0  # seconds close() waits for the reader and the deliveries to end


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
        on_timeout: TimeoutCallback | None = None,
        **log_context: Any,
    ) -> None:
        self._sock = sock
        self._on_timeout = on_timeout  # told of every request that was not answered in time
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
        self._batch: list[Delivery] = []  # deliveries of the current read
        self._stdin: dict[str, int] = {}  # key -> stdin stream
        self.closed = threading.Event()
        self.failure: str | None = None  # how the guest broke the protocol, if it did
        self.oddities = 0  # messages and frames ignored
        self.agent_version: int | None = None
        # The agent numbers its events and output frames; we acknowledge what we
        # have, and it sends what we did not acknowledge again to a new client.
        self._received = 0
        self._acknowledged = 0
        self._ack_lock = threading.Lock()
        self._deliveries = Deliveries(
            "agent-deliveries",
            OUTPUT_HOLD,
            BACKLOG_LIMIT,
            on_drained=self._acknowledge,
            **log_context,
        )

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
        try:
            self._wait(self._hello, timeout)
        except AgentTimeout:
            raise
        except AgentError:
            self.closed.wait(CLOSE_WAIT)  # a malformed handshake: the reader says so as it ends
            if self.failure:
                raise AgentError(f"guest agent misbehaved: {self.failure}") from None
            raise

    @property
    def finished(self) -> threading.Event:
        """Set once the connection is closed and everything received was delivered."""
        return self._deliveries.finished

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        if threading.current_thread() not in (self._reader, self._deliveries.thread):
            self._reader.join(CLOSE_WAIT)
            self._deliveries.thread.join(CLOSE_WAIT)  # nothing delivered after close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def give_up(self, reason: str) -> None:
        """End the connection as one the guest broke (it stopped answering): `failure`
        says why, as for a protocol violation."""
        self._violation(reason, "guest agent stopped answering; closing its connection")

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
            try:
                data += base64.b64decode(result["data_b64"], validate=True)
                eof = result["eof"]
            except (TypeError, KeyError, ValueError):
                raise AgentError(
                    f"guest agent sent a malformed reply to read_file {path}"
                ) from None
            if len(data) > limit:
                raise AgentError(f"{path}: larger than {limit} bytes")
            if eof is True:
                return bytes(data)

    def remove_container(self, cid: str, timeout: float = SLOW_TIMEOUT) -> None:
        self._call("remove_container", timeout, container=cid)

    def state(self, timeout: float = DEFAULT_TIMEOUT) -> dict:
        """{"containers": {cid: {"status", "code", "pid", "execs": {id: {...}}}}, "hostname"}."""
        result = self._call("state", timeout)
        containers = result.get("containers") if isinstance(result, dict) else None
        if not isinstance(containers, dict) or not all(
            isinstance(entry, dict) for entry in containers.values()
        ):
            raise AgentError("guest agent sent a malformed state")
        return result

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
        if threading.current_thread() in (self._reader, self._deliveries.thread):
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
            if self._on_timeout is not None and call is not self._hello:
                self._on_timeout(call.op, timeout)
            raise AgentTimeout(f"guest agent did not answer {call.op} within {timeout:g} s")
        reply = call.reply
        if reply is None:
            raise AgentError(f"guest agent connection closed during {call.op}")
        if reply.get("ok") is not True:
            raise AgentError(one_line(reply.get("error")) or f"{call.op} failed")
        return reply.get("result")

    def _send(self, data: bytes) -> None:
        if self.closed.is_set():
            raise AgentError("guest agent connection closed")
        try:
            with self._send_lock:
                self._sock.sendall(data)
        except (BlockingIOError, TimeoutError):
            message = f"guest agent took nothing for {self._send_timeout:g} s"
            self.failure = self.failure or message
            self.close()  # part of a frame may have gone: the stream is unusable now
            raise AgentTimeout(message) from None
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
                        self._control(protocol.decode_message(payload), len(payload))
                    else:
                        self._received += 1
                        self._output(stream, payload)
                self._queue_batch()
            if self._decoder.synced and self._decoder.pending:
                raise protocol.ProtocolError("connection closed in the middle of a frame")
        except protocol.ProtocolError as exc:
            self._violation(str(exc))
        except OSError:
            pass
        finally:
            self.closed.set()
            with self._lock:
                calls = list(self._pending.values())
                self._pending.clear()
            for call in calls:
                call.done.set()
            try:  # what came before the end is still delivered
                self._deliveries.put(self._batch)
            except BacklogExceeded:
                pass
            self._deliveries.close()

    def _violation(
        self, reason: str, what: str = "guest agent broke the protocol; closing its connection"
    ) -> None:
        self.failure = self.failure or reason
        self._log.error(what, error=reason)
        try:  # the guest learns at once: a sender blocked on a full socket fails
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _queue_batch(self) -> None:
        batch, self._batch = self._batch, []
        size = sum(item[0] for item in batch)
        # Acknowledge before the callbacks run, while little waits: whatever a
        # callback's reader asks the agent next is then sure to follow the
        # acknowledgement. Beyond that the acknowledgement waits for the deliveries.
        if self._deliveries.waiting + size <= OUTPUT_HOLD:
            self._acknowledge()
        try:
            self._deliveries.put(batch)
        except BacklogExceeded as exc:
            raise protocol.ProtocolError(f"output beyond flow control: {exc}") from None

    def _acknowledge(self) -> None:
        with self._ack_lock:
            if self._received == self._acknowledged:
                return
            self._acknowledged = self._received
            self._send_quietly(protocol.encode_message({"ack": self._received}))

    def oddity(self, what: str, **detail: Any) -> None:
        """Something the guest sent that is ignored: counted, logged at a limited rate."""
        self.oddities += 1
        if self.oddities <= ODDITIES_LOGGED or self.oddities % ODDITIES_EVERY == 0:
            self._log.warning(
                "ignoring what the guest agent sent",
                what=what,
                ignored_so_far=self.oddities,
                **detail,
            )

    def _control(self, message: dict, size: int) -> None:
        if "reply" in message:
            self._reply(message)
            return
        self._received += 1
        event = message.get("event")
        if event == "stream":
            self._announce(message)
            return
        if not isinstance(event, str):
            self.oddity("a message that is neither a reply nor an event")
            return
        if event == "exit":
            with self._lock:
                self._stdin.pop(str(message.get("key")), None)
        self._batch.append((size, self._on_event, (message,)))

    def _reply(self, message: dict) -> None:
        request_id = message["reply"]
        if type(request_id) is not int:
            raise protocol.ProtocolError("a reply without a request number")
        if self._batch:  # what came before the reply is queued before its waiter wakes
            self._queue_batch()
        with self._lock:
            call = self._pending.pop(request_id, None)
        if call is None:  # also a late reply to a request that timed out
            self.oddity("a reply to no pending request", reply=request_id)
            return
        try:
            if call is self._hello:
                self._handshake(message.get("result"))
            call.reply = message
        finally:
            call.done.set()  # a malformed handshake fails its wait: reply None

    def _handshake(self, result: Any) -> None:
        if not isinstance(result, dict):
            raise protocol.ProtocolError("malformed handshake")
        seq, streams = result.get("seq", 1), result.get("streams") or []
        if type(seq) is not int or not 1 <= seq < 2**63 or not isinstance(streams, list):
            raise protocol.ProtocolError("malformed handshake")
        self.agent_version = result.get("version")
        self._received = self._acknowledged = seq - 1
        for entry in streams:
            self._announce(entry)

    def _announce(self, entry: Any) -> None:
        if not isinstance(entry, dict):
            raise protocol.ProtocolError("malformed stream announcement")
        stream, key, fd = entry.get("stream"), entry.get("key"), entry.get("fd")
        if (
            type(stream) is not int
            or not 0 < stream <= 0xFFFFFFFF
            or not isinstance(key, str)
            or fd not in FD_NAMES
        ):
            raise protocol.ProtocolError("malformed stream announcement")
        with self._lock:
            if len(self._outputs) + len(self._stdin) >= MAX_STREAMS:
                raise protocol.ProtocolError(f"more than {MAX_STREAMS} streams open")
            if fd == "stdin":
                self._stdin[key] = stream
            else:
                self._outputs[stream] = (key, fd)

    def _output(self, stream: int, data: bytes) -> None:
        with self._lock:
            owner = self._outputs.get(stream) if data else self._outputs.pop(stream, None)
        if owner is None:
            self.oddity("output on an unknown stream", stream=stream)  # e.g. resent
            return
        self._batch.append((len(data), self._on_output, (*owner, data)))


def one_line(text: Any) -> str:
    """A guest's message as the user may see it: one line of printable text, short."""
    if not isinstance(text, str):
        return ""
    printable = "".join(c if c.isprintable() else " " for c in text)
    line = " ".join(printable.split())
    return line if len(line) <= ERROR_CHARS else line[:ERROR_CHARS] + "..."

"""The wire format between the host and the guest agent (standard library only).

A connection is a sequence of frames: ``[u32 stream][u32 length] payload``,
both numbers big-endian. Stream 0 carries control messages, one compact JSON
object per frame. Any other stream carries the bytes of one process's stdin,
stdout or stderr; a zero-length frame on such a stream is its end of file.

Control messages:

- request (host -> agent): ``{"id": int, "op": str, ...arguments}``
- reply (agent -> host): ``{"reply": id, "ok": true, "result": ...}`` or
  ``{"reply": id, "ok": false, "error": "one line"}``
- event (agent -> host): ``{"event": name, ...}``

Every connection starts with a handshake: the host sends the request
``{"op": "hello", "nonce": ...}``; the agent answers with `SYNC` followed by
the reply frame, whose result carries the nonce back. The host discards every
byte before that: a virtio-serial port can hand a new connection the tail of
what the agent wrote to the previous one, and the nonce makes sure the host
synchronises on its own answer, not on bytes a container printed.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable

VERSION = 1
CONTROL = 0
HEADER = struct.Struct(">II")
MAX_PAYLOAD = 1 << 20  # a frame larger than this is a protocol violation
DATA_CHUNK = 16 << 10  # stdio is forwarded in chunks of at most this size
SYNC = b"\x00\xffhc-agent-sync\xff\x00"

# Process streams are named by a key: the container id for its main
# process, "<container>/<exec>" for an exec'd one.
KEY_SEPARATOR = "/"


class ProtocolError(Exception):
    """The peer sent something that is not a valid frame."""


def process_key(container: str, exec_id: str | None = None) -> str:
    return container if exec_id is None else f"{container}{KEY_SEPARATOR}{exec_id}"


def encode_frame(stream: int, payload: bytes) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(f"frame of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    if not 0 <= stream <= 0xFFFFFFFF:
        raise ProtocolError(f"stream number {stream} out of range")
    return HEADER.pack(stream, len(payload)) + payload


def encode_message(message: dict) -> bytes:
    """A control frame holding `message` as JSON."""
    payload = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    return encode_frame(CONTROL, payload)


def decode_message(payload: bytes) -> dict:
    try:
        message = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"control frame is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("control frame is not a JSON object")
    return message


Accept = Callable[[int, bytes], bool]


class Decoder:
    """Turns a byte stream, fed in pieces of any size, into (stream, payload) frames.

    Given `accept`, the decoder starts unsynchronised: it skips bytes up to a
    `SYNC` marker whose following frame `accept(stream, payload)` approves,
    and returns that frame first.

    With `resync` (the agent's side of a virtio-serial port, where one host can
    follow another without the guest ever seeing a hang-up), a marker found
    where a frame should start, or a malformed frame, means synchronising anew
    instead of failing: the next handshake is returned like any frame.
    """

    def __init__(
        self, accept: Accept | None = None, max_payload: int = MAX_PAYLOAD, resync: bool = False
    ) -> None:
        self._buffer = bytearray()
        self._accept = accept
        self._synced = accept is None
        self._max_payload = max_payload
        self._resync = resync and accept is not None

    @property
    def synced(self) -> bool:
        return self._synced

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """The frames completed by `data`; raises ProtocolError on an oversized frame."""
        self._buffer += data
        frames: list[tuple[int, bytes]] = []
        while True:
            if not self._synced:
                handshake = self._synchronise()
                if handshake is None:
                    return frames
                frames.append(handshake)
                continue
            if self._resync and self._marker_in_frame():
                self._synced = False
                continue
            try:
                frame = self._take(0)
            except ProtocolError:
                if not self._resync:
                    raise
                self._synced = False
                continue
            if frame is None:
                return frames
            frames.append(frame)

    def _marker_in_frame(self) -> bool:
        """Whether a marker starts within the next frame: a new host, maybe after
        one that died mid-frame. Everything before the marker is then dropped.
        (Stdin data holding the exact marker would be taken for one too; it is
        not worth escaping.)
        """
        if len(self._buffer) < HEADER.size:
            return False
        _, length = HEADER.unpack_from(self._buffer)
        end = min(len(self._buffer), HEADER.size + length)
        marker = self._buffer.find(SYNC, 0, end)
        if marker < 0:
            return False
        del self._buffer[:marker]
        return True

    def _take(self, start: int) -> tuple[int, bytes] | None:
        """The frame at `start` (dropping everything before its end), or None if incomplete."""
        end = self._frame_end(start)
        if end is None:
            return None
        stream, _ = HEADER.unpack_from(self._buffer, start)
        payload = bytes(self._buffer[start + HEADER.size : end])
        del self._buffer[:end]
        return stream, payload

    def _frame_end(self, start: int) -> int | None:
        if len(self._buffer) < start + HEADER.size:
            return None
        _, length = HEADER.unpack_from(self._buffer, start)
        if length > self._max_payload:
            raise ProtocolError(f"frame of {length} bytes exceeds {self._max_payload}")
        end = start + HEADER.size + length
        return end if len(self._buffer) >= end else None

    def _synchronise(self) -> tuple[int, bytes] | None:
        assert self._accept is not None
        while True:
            index = self._buffer.find(SYNC)
            if index < 0:
                # Keep a tail that may be the start of a marker split across reads.
                del self._buffer[: max(0, len(self._buffer) - len(SYNC) + 1)]
                return None
            start = index + len(SYNC)
            try:
                end = self._frame_end(start)
            except ProtocolError:  # garbage that looks like a marker: skip it
                del self._buffer[:start]
                continue
            if end is None:
                # The genuine handshake frame never contains a marker, so a later
                # marker means this one was garbage; otherwise wait for more bytes.
                if self._buffer.find(SYNC, start) >= 0:
                    del self._buffer[:start]
                    continue
                del self._buffer[:index]
                return None
            stream, _ = HEADER.unpack_from(self._buffer, start)
            payload = bytes(self._buffer[start + HEADER.size : end])
            if self._accept(stream, payload):
                del self._buffer[:end]
                self._synced = True
                return stream, payload
            del self._buffer[:start]

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buffer)

"""ttrpc's message frame: a 10-byte header (length, stream id, type, flags) and the data.

The wire format of containerd/ttrpc PROTOCOL.md: length and stream id are big-endian
u32, type and flags one byte each. Data longer than 4 MiB is refused; a reader that
meets such a header discards the data without holding it, so the connection stays
in step and the peer can be told why (`FrameTooLarge` carries the stream id).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

HEADER = struct.Struct(">IIBB")
MAX_DATA = 4 << 20

REQUEST, RESPONSE, DATA = 1, 2, 3
FLAG_REMOTE_CLOSED, FLAG_REMOTE_OPEN, FLAG_NO_DATA = 0x01, 0x02, 0x04


class FrameError(Exception):
    """The byte stream is not ttrpc (or the peer hung up inside a frame)."""


class FrameTooLarge(FrameError):
    def __init__(self, stream_id: int, kind: int, length: int) -> None:
        super().__init__(f"message length {length} exceeds the maximum of {MAX_DATA}")
        self.stream_id, self.kind, self.length = stream_id, kind, length


@dataclass(frozen=True)
class Frame:
    stream_id: int
    kind: int
    flags: int
    data: bytes


def encode(stream_id: int, kind: int, data: bytes, flags: int = 0) -> bytes:
    if len(data) > MAX_DATA:
        raise FrameTooLarge(stream_id, kind, len(data))
    return HEADER.pack(len(data), stream_id, kind, flags) + data


def read_frame(stream: BinaryIO) -> Frame | None:
    """The next frame; None at a clean end of stream (between frames)."""
    header = _read_exactly(stream, HEADER.size, at_start=True)
    if header is None:
        return None
    length, stream_id, kind, flags = HEADER.unpack(header)
    if length > MAX_DATA:
        _discard(stream, length)
        raise FrameTooLarge(stream_id, kind, length)
    data = _read_exactly(stream, length) or b""
    return Frame(stream_id, kind, flags, data)


def _read_exactly(stream: BinaryIO, size: int, at_start: bool = False) -> bytes | None:
    chunks, remaining = [], size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            if at_start and remaining == size:
                return None
            raise FrameError(
                f"connection closed inside a frame ({size - remaining} of {size} bytes)"
            )
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _discard(stream: BinaryIO, size: int) -> None:
    while size:
        chunk = stream.read(min(size, 1 << 16))
        if not chunk:
            raise FrameError("connection closed inside an oversized frame")
        size -= len(chunk)

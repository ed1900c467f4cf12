"""A layer blob as a stream of tar bytes: decompressed, counted, hashed.

The compression is sniffed from the first bytes (as Docker does), so a layer
whose media type lies about it still unpacks. The decompressed size is
bounded: a small blob that inflates without end (a "decompression bomb") is
stopped at the limit instead of filling the disk. gzip is inflated with ISA-L
(python-isal, about 3.5 times zlib's speed here) when it is installed.
"""

from __future__ import annotations

import hashlib
import io
import os
import types
import zlib
from typing import Any, Protocol, cast

import zstandard
from hypercontainer.errors import UserError

inflate_module: types.ModuleType
try:
    from isal import isal_zlib as inflate_module
except ImportError:  # pragma: no cover - isal is a dependency; zlib does the same, slower
    inflate_module = zlib
_inflate_error = cast("type[Exception]", inflate_module.error)

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
RATIO_FLOOR = 1 << 20  # blobs smaller than this are treated as this big for the ratio
CHUNK = 1 << 20
GZIP_WBITS = zlib.MAX_WBITS | 16  # the gzip header is read and its CRC checked


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


def size_limit(compressed_size: int, max_size: int, max_ratio: int) -> int:
    """How many decompressed bytes a blob of `compressed_size` may produce."""
    return min(max_size, max(compressed_size, RATIO_FLOOR) * max_ratio)


def sniff(head: bytes) -> str:
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return ""


class TooLarge(UserError):
    """The layer decompressed past its limit; the message names the layer already."""


class TarStream:
    """Reader of a layer's uncompressed tar, hashing and counting as it goes.

    It can `seek` forward (by reading on) and back within what it holds, which is
    all `tarfile` needs in its `r:` mode: headers are then sliced out of a buffer
    instead of being copied with it, as `r|` mode does. `copy_to` writes a file's
    content to a descriptor without another copy.
    """

    def __init__(self, blob: Readable, limit: int, what: str) -> None:
        head = b""
        while len(head) < 4 and (more := blob.read(4 - len(head))):
            head += more  # a network stream may hand out fewer bytes than asked
        self.compression = sniff(head)
        self._inner = _open(_Prefixed(head, blob), self.compression)
        self._limit = limit
        self._what = what
        self._hash = hashlib.sha256()
        self.size = 0  # decompressed bytes produced so far
        self._buf = b""
        self._pos = 0  # read position in _buf
        self._start = 0  # stream offset of _buf[0]

    # -- the file interface tarfile uses ---------------------------------------

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self._limit + 1  # never an unbounded read
        parts = []
        while n > 0 and (self._pos < len(self._buf) or self._fill()):
            take = min(n, len(self._buf) - self._pos)
            if take == len(self._buf):  # a whole buffer: no copy
                parts.append(self._buf)
            else:
                parts.append(self._buf[self._pos : self._pos + take])
            self._pos += take
            n -= take
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def tell(self) -> int:
        return self._start + self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence != io.SEEK_SET:
            raise io.UnsupportedOperation("only absolute seeks")
        if offset < self._start:
            raise io.UnsupportedOperation("cannot seek back before the buffered data")
        while offset > self._start + len(self._buf):
            if not self._fill():
                break
        self._pos = min(offset - self._start, len(self._buf))
        return self.tell()

    # -- fast paths -------------------------------------------------------------

    def copy_to(self, fd: int, n: int) -> int:
        """Write the next `n` bytes to the file descriptor `fd`; how many there were."""
        written = 0
        while written < n and (self._pos < len(self._buf) or self._fill()):
            take = min(n - written, len(self._buf) - self._pos)
            view = memoryview(self._buf)[self._pos : self._pos + take]
            while view:
                view = view[os.write(fd, view) :]
            self._pos += take
            written += take
        return written

    def drain(self) -> None:
        """Read what tar left unread (end-of-archive padding) so the digest is whole."""
        self._pos = len(self._buf)
        while self._fill():
            self._pos = len(self._buf)

    @property
    def diff_id(self) -> str:
        return f"sha256:{self._hash.hexdigest()}"

    def _fill(self) -> bool:
        """Replace the (consumed) buffer with the next decompressed bytes; False at the end."""
        data = self._inner.read(min(CHUNK, self._limit + 1 - self.size))
        if not data:
            return False
        self.size += len(data)
        if self.size > self._limit:
            raise TooLarge(
                f"{self._what}: decompresses to more than {self._limit} bytes "
                "(decompression bomb?); see images.max_layer_size and max_compression_ratio"
            )
        self._hash.update(data)
        self._start += len(self._buf)
        self._buf, self._pos = data, 0
        return True


class _Prefixed:
    """`head`, then the rest of `source`: sniffing must not lose the first bytes."""

    def __init__(self, head: bytes, source: Readable) -> None:
        self._head = head
        self._source = source

    def read(self, n: int = -1) -> bytes:
        if not self._head:
            return self._source.read(n)
        head, self._head = self._head, b""
        return head  # a short read, as any stream may give


class Gunzip:
    """gzip members one after another, as gzip(1) writes them, inflated in large steps.

    (GzipFile reads through an 8 KiB buffer: several times slower for layers.)
    Corrupt data raises `zlib.error` whichever inflater is in use.
    """

    def __init__(self, source: Readable) -> None:
        self._source = source
        self._inflater = inflate_module.decompressobj(GZIP_WBITS)
        self._input = b""
        self._member_started = False
        self._done = False

    def read(self, n: int) -> bytes:
        try:
            return self._read(n)
        except _inflate_error as e:
            raise zlib.error(str(e)) from None

    def _read(self, n: int) -> bytes:
        while not self._done:
            if not self._input:
                self._input = self._source.read(CHUNK)
                if not self._input:
                    if self._member_started:
                        raise EOFError("gzip data ends before its end-of-stream marker")
                    self._done = True
                    break
            self._member_started = True
            out = self._inflater.decompress(self._input, n)
            self._input = self._inflater.unconsumed_tail
            if self._inflater.eof:  # a member ends; another may follow (zero padding may not)
                self._input = self._inflater.unused_data.lstrip(b"\0")
                self._inflater = inflate_module.decompressobj(GZIP_WBITS)
                self._member_started = False
            if out:
                return out
        return b""


def _open(blob: Readable, compression: str) -> Readable:
    if compression == "gzip":
        return cast(Readable, Gunzip(blob))
    if compression == "zstd":
        reader = zstandard.ZstdDecompressor().stream_reader(
            cast(Any, blob), read_across_frames=True
        )
        return cast(Readable, reader)
    return blob

"""A layer blob as a stream of tar bytes: decompressed, counted, hashed.

The compression is sniffed from the first bytes (as Docker does), so a layer
whose media type lies about it still unpacks. The decompressed size is
bounded: a small blob that inflates without end (a "decompression bomb") is
stopped at the limit instead of filling the disk.
"""

from __future__ import annotations

import hashlib
import zlib
from typing import BinaryIO

import zstandard
from hypercontainer.errors import UserError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
RATIO_FLOOR = 1 << 20  # blobs smaller than this are treated as this big for the ratio
CHUNK = 1 << 20
GZIP_WBITS = zlib.MAX_WBITS | 16  # zlib reads the gzip header and checks its CRC


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
    """File-like reader of a layer's uncompressed tar, hashing as it goes."""

    def __init__(self, blob: BinaryIO, limit: int, what: str) -> None:
        head = blob.read(4)
        blob.seek(0)
        self.compression = sniff(head)
        self._inner = _open(blob, self.compression)
        self._limit = limit
        self._what = what
        self._hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self._limit + 1  # never an unbounded read
        data = self._inner.read(min(n, self._limit + 1 - self.size))
        self.size += len(data)
        if self.size > self._limit:
            raise TooLarge(
                f"{self._what}: decompresses to more than {self._limit} bytes "
                "(decompression bomb?); see images.max_layer_size and max_compression_ratio"
            )
        self._hash.update(data)
        return data

    def drain(self) -> None:
        """Read what tar left unread (end-of-archive padding) so the digest is whole."""
        while self.read(1 << 20):
            pass

    @property
    def diff_id(self) -> str:
        return f"sha256:{self._hash.hexdigest()}"


class Gunzip:
    """gzip members one after another, as gzip(1) writes them, inflated in large steps.

    (GzipFile reads through an 8 KiB buffer: several times slower for layers.)
    """

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._inflater = zlib.decompressobj(GZIP_WBITS)
        self._input = b""
        self._member_started = False
        self._done = False

    def read(self, n: int) -> bytes:
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
                self._inflater = zlib.decompressobj(GZIP_WBITS)
                self._member_started = False
            if out:
                return out
        return b""


def _open(blob: BinaryIO, compression: str):
    if compression == "gzip":
        return Gunzip(blob)
    if compression == "zstd":
        return zstandard.ZstdDecompressor().stream_reader(blob, read_across_frames=True)
    return blob

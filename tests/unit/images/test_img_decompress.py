"""Layer streams: gzip (several members too), zstd, plain; damage is refused."""

from __future__ import annotations

import gzip
import io
import os
import zlib

import pytest
import zstandard
from hypercontainer.errors import UserError
from hypercontainer_plugins.images.decompress import Gunzip, TarStream

DATA = os.urandom(3 << 20) + bytes(2 << 20)


def read_all(reader, step: int = 1 << 16) -> bytes:
    parts = []
    while chunk := reader.read(step):
        parts.append(chunk)
    return b"".join(parts)


@pytest.mark.parametrize("step", [1, 4096, 1 << 20, 10 << 20])
def test_gunzip_reads_what_gzip_wrote(step):
    data = DATA[:200_000] if step == 1 else DATA
    assert read_all(Gunzip(io.BytesIO(gzip.compress(data))), step) == data


def test_gunzip_reads_several_members_and_trailing_zeros():
    blob = gzip.compress(b"one ") + gzip.compress(b"two") + bytes(1024)
    assert read_all(Gunzip(io.BytesIO(blob))) == b"one two"


def test_gunzip_refuses_truncated_and_corrupt_data():
    blob = gzip.compress(DATA)
    with pytest.raises(EOFError):
        read_all(Gunzip(io.BytesIO(blob[: len(blob) // 2])))
    damaged = bytearray(blob)
    damaged[-6] ^= 0xFF  # the CRC
    with pytest.raises(zlib.error):
        read_all(Gunzip(io.BytesIO(bytes(damaged))))
    with pytest.raises(zlib.error):
        read_all(Gunzip(io.BytesIO(blob + b"garbage after the member")))


@pytest.mark.parametrize(
    "encode",
    [gzip.compress, zstandard.ZstdCompressor().compress, lambda d: d],
    ids=["gzip", "zstd", "plain"],
)
def test_tar_stream_sniffs_counts_and_hashes(encode):
    import hashlib

    stream = TarStream(io.BytesIO(encode(DATA)), limit=len(DATA), what="layer x")
    assert read_all(stream) == DATA
    assert stream.size == len(DATA)
    assert stream.diff_id == "sha256:" + hashlib.sha256(DATA).hexdigest()


def test_tar_stream_stops_at_the_limit():
    stream = TarStream(io.BytesIO(gzip.compress(DATA)), limit=len(DATA) - 1, what="layer x")
    with pytest.raises(UserError, match="layer x: decompresses to more than"):
        read_all(stream)

"""The blob store keeps only verified blobs, written atomically."""

from __future__ import annotations

import pytest
from hypercontainer.errors import UserError
from hypercontainer_plugins.images import digests
from hypercontainer_plugins.images.blobstore import BlobStore
from hypercontainer_plugins.images.decompress import size_limit


@pytest.fixture
def blobs(tmp_path) -> BlobStore:
    return BlobStore(tmp_path / "blobs", tmp_path / "tmp")


def test_verified_blob_lands_under_its_digest(blobs, tmp_path):
    data = b"hello" * 1000
    digest = digests.of_bytes(data)
    seen = []
    path = blobs.ingest([data[:10], data[10:]], digest, len(data), "blob", progress=seen.append)
    assert path == tmp_path / "blobs/sha256" / digest.split(":")[1]
    assert path.read_bytes() == data and blobs.has(digest)
    assert seen == [10, len(data)]
    assert list(blobs.all()) == [digest]


@pytest.mark.parametrize(
    "chunks, size, message",
    [
        ([b"tampered"], 8, "digest mismatch"),
        ([b"short"], 8, "size mismatch"),
        ([b"much", b"too long"], 8, "more data than the announced 8 bytes"),
    ],
)
def test_bad_blob_stores_nothing(blobs, tmp_path, chunks, size, message):
    digest = digests.of_bytes(b"original")
    with pytest.raises(UserError, match=message):
        blobs.ingest(chunks, digest, size, "blob x")
    assert not blobs.has(digest)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_interrupted_stream_stores_nothing(blobs, tmp_path):
    def broken():
        yield b"part"
        raise ConnectionError("reset")

    with pytest.raises(ConnectionError):
        blobs.ingest(broken(), digests.of_bytes(b"partial"), 7, "blob")
    assert list(blobs.all()) == [] and list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("digest", ["sha256:../../etc/passwd", "md5:" + "0" * 32, "sha256:ABC"])
def test_malformed_digest_never_becomes_a_path(blobs, digest):
    with pytest.raises(UserError, match="invalid digest"):
        blobs.path(digest)


def test_decompressed_size_limit_scales_with_blob_size():
    assert size_limit(10, max_size=10**12, max_ratio=100) == 100 * 2**20  # small blobs: floor
    assert size_limit(50 * 2**20, max_size=10**12, max_ratio=100) == 5000 * 2**20
    assert size_limit(50 * 2**20, max_size=2**30, max_ratio=100) == 2**30

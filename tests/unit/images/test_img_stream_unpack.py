"""One pass per layer: a blob unpacked while it arrives, stored and published only when
both its digest and its uncompressed digest match. Store.unpack_download is driven
directly (no garbage collector behind it), so what a failure leaves is what it left."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypercontainer.errors import UserError
from hypercontainer_plugins.images import build, digests
from hypercontainer_plugins.images.build import Layer
from hypercontainer_plugins.images.store import Store

LAYER = (
    Layer()
    .dir("etc")
    .file("etc/motd", b"hello\n")
    .file("data.bin", bytes(range(256)) * 4000)
    .symlink("motd", "etc/motd")
)
TAR = LAYER.tar()
BLOB = build.compress(TAR, "gzip").data
DIFF_ID = digests.of_bytes(TAR)
DIGEST = digests.of_bytes(BLOB)


def chunks(data: bytes, size: int = 4096) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def cut_after(data: bytes, at: int) -> Iterator[bytes]:
    yield from chunks(data[:at])
    raise UserError("blob 123456789abc of x: download failed: the connection was cut")


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "images", privileged=False)


def left(store: Store) -> dict[str, list[str]]:
    return {
        "blobs": sorted(store.blobs.all()),
        "layers": sorted(p.name for p in store.layers.glob("*/*")),
        "tmp": sorted(p.name for p in store.tmp.glob("*")),
        "layer_sizes": sorted(store.index.layer_ids()),
    }


NOTHING = {"blobs": [], "layers": [], "tmp": [], "layer_sizes": []}


def download(
    store: Store, source: Iterator[bytes], size: int = len(BLOB), diff_id: str = DIFF_ID
) -> int:
    with store.blobs.writer(DIGEST, size, "layer test") as blob:
        return store.unpack_download(source, blob, diff_id, 64 << 20, "layer test")


def test_a_good_blob_is_stored_and_unpacked_in_one_pass(store):
    size = download(store, chunks(BLOB))
    assert store.blobs.read(DIGEST) == BLOB
    layer = store.layer_path(DIFF_ID)
    assert (layer / "etc/motd").read_bytes() == b"hello\n"
    assert (layer / "data.bin").read_bytes() == bytes(range(256)) * 4000
    assert (layer / "motd").readlink().as_posix() == "etc/motd"
    assert size == 6 + 256 * 4000 == store.index.layer_size(DIFF_ID)
    assert list(store.tmp.glob("*")) == []


def flipped(data: bytes, offset: int) -> bytes:
    changed = bytearray(data)
    changed[offset] ^= 0xFF
    return bytes(changed)


@pytest.mark.parametrize(
    ("name", "source", "message"),
    [
        # A byte changed in the middle: inflating fails first, the blob's digest says why.
        ("mismatch mid-stream", lambda: chunks(flipped(BLOB, len(BLOB) // 2)), "digest mismatch"),
        # The gzip header's MTIME changed: the content unpacks whole and right, the blob is wrong.
        ("mismatch after a good unpack", lambda: chunks(flipped(BLOB, 4)), "digest mismatch"),
        ("truncated blob", lambda: chunks(BLOB[: len(BLOB) // 3]), "size mismatch"),
        ("connection cut", lambda: cut_after(BLOB, len(BLOB) // 2), "download failed"),
        ("connection cut at the very end", lambda: cut_after(BLOB, len(BLOB)), "download failed"),
        ("more than announced", lambda: chunks(BLOB + b"\0" * 10), "more data than the announced"),
    ],
)
def test_a_bad_download_leaves_nothing(store, name, source, message):
    with pytest.raises(UserError, match=message) as error:
        download(store, source())
    assert "\n" not in str(error.value)
    assert left(store) == NOTHING


def test_a_lying_diff_id_leaves_nothing(store):
    with pytest.raises(UserError, match="uncompressed digest .* does not match"):
        download(store, chunks(BLOB), diff_id="sha256:" + "2" * 64)
    assert left(store) == NOTHING


def refused(store: Store, layer: Layer, limit: int, message: str) -> None:
    """Streaming `layer` (gzip) fails with `message`, and leaves nothing."""
    tar = layer.tar()
    blob = build.compress(tar, "gzip").data
    with store.blobs.writer(digests.of_bytes(blob), len(blob), "layer x") as writer:
        with pytest.raises(UserError, match=message):
            store.unpack_download(chunks(blob), writer, digests.of_bytes(tar), limit, "layer x")
    assert left(store) == NOTHING


def test_a_bomb_is_stopped_mid_stream_and_leaves_nothing(store):
    refused(store, Layer().file("zeros", bytes(8 << 20)), 1 << 20, "decompresses to more than")


def test_hostile_entries_in_a_stream_are_refused_as_from_a_file(store):
    hostile = Layer().symlink("up", "../../..").file("up/escaped", b"x")
    refused(store, hostile, 1 << 20, "symlink or not a directory")
    assert not (store.root.parent / "escaped").exists()

"""Content changed on the registry's disk is refused, and the store keeps no trace of it."""

from __future__ import annotations

import json

import pytest
from hypercontainer.errors import UserError

from tests.support import imagebuild
from tests.support.imagestore import EMPTY, store_state

pytestmark = pytest.mark.registry


def flip_byte(path, offset: int = -100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def two_layers_digests() -> tuple[str, str, list[str]]:
    top, _ = imagebuild.two_layers()
    manifest = json.loads(top.data)
    return top.digest, manifest["config"]["digest"], [d["digest"] for d in manifest["layers"]]


@pytest.mark.parametrize("which", ["bottom layer", "top layer", "config", "manifest"])
def test_tampered_blob_refused_and_nothing_kept(fresh_registry, images, which):
    manifest_digest, config_digest, layer_digests = two_layers_digests()
    target = {
        "bottom layer": layer_digests[0],
        "top layer": layer_digests[1],
        "config": config_digest,
        "manifest": manifest_digest,
    }[which]
    path = fresh_registry.blob_path("test/two", target)
    if which == "manifest":
        # Still valid JSON, or the registry itself would refuse to serve it.
        path.write_bytes(path.read_bytes().replace(b'"size":', b'"size":1', 1))
    else:
        flip_byte(path, offset=-20)
    with pytest.raises(UserError, match="digest mismatch") as error:
        images.pull(f"{fresh_registry.address}/test/two")
    assert "\n" not in str(error.value)
    assert store_state(images) == EMPTY


def test_truncated_layer_refused(fresh_registry, images):
    _, _, layer_digests = two_layers_digests()
    blob = fresh_registry.blob_path("test/two", layer_digests[0])
    blob.write_bytes(blob.read_bytes()[:1000])
    with pytest.raises(UserError, match="size mismatch|digest mismatch"):
        images.pull(f"{fresh_registry.address}/test/two")
    assert store_state(images) == EMPTY


def test_failed_pull_keeps_layers_other_images_use(fresh_registry, images):
    busybox = images.pull(f"{fresh_registry.address}/test/busybox")
    before = store_state(images)
    _, _, layer_digests = two_layers_digests()
    flip_byte(fresh_registry.blob_path("test/two", layer_digests[1]), offset=-20)
    with pytest.raises(UserError, match="digest mismatch"):
        images.pull(f"{fresh_registry.address}/test/two")
    assert store_state(images) == before
    assert images.resolve(f"{fresh_registry.address}/test/busybox").layers == busybox.layers

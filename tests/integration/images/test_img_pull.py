"""Pulling from a real docker-registry on 127.0.0.1, filled with skopeo."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
from hypercontainer.errors import NotFound, UserError
from hypercontainer_plugins.images import digests
from hypercontainer_plugins.images.auth import CredentialStore
from hypercontainer_plugins.images.reference import parse
from hypercontainer_plugins.images.registry import RegistryClient

from tests.support import imagebuild
from tests.support.imagestore import EMPTY, statuses, store_state
from tests.support.registry import free_port

pytestmark = pytest.mark.registry


def test_pull_two_layers_with_whiteout_and_opaque_dir(registry, images):
    events: list[dict] = []
    image = images.pull(f"{registry.address}/test/two", events.append)

    assert image.reference == f"{registry.address}/test/two:latest"
    assert image.config.entrypoint == ["/bin/sh", "-c"]
    assert image.config.working_dir == "/home/user"
    bottom, top = (images.layers_root() / layer for layer in image.layers)
    assert (bottom / "bin/busybox").stat().st_size > 100_000
    assert (top / "hello.txt").read_text() == "hello from layer two\n"
    whiteout = (top / "bin/vi").lstat()
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0
    assert os.getxattr(top / "usr/sbin", "trusted.overlay.opaque") == b"y"

    layer_ids = [digests.short(d) for d in imagebuild.layer_digests(imagebuild.two_layers())]
    # One pass: a layer is unpacked while it downloads ("extracting" is only reported
    # when a layer is unpacked from a blob already stored).
    assert statuses(events) == {
        layer: ["waiting", "downloading", "verifying", "done"] for layer in layer_ids
    }
    assert all(e["total"] > 0 and 0 <= e["current"] <= e["total"] for e in events)
    assert [(r.repository, r.tag) for r in images.list()] == [
        (f"{registry.address}/test/two", "latest")
    ]


def test_pull_again_finds_everything_present(registry, images):
    images.pull(f"{registry.address}/test/two")
    before = store_state(images)
    events: list[dict] = []
    images.pull(f"{registry.address}/test/two", events.append)
    assert {s for history in statuses(events).values() for s in history} == {"waiting", "exists"}
    assert store_state(images) == before


def test_layers_unpacked_once_and_shared(registry, images):
    busybox = images.pull(f"{registry.address}/test/busybox")
    two = images.pull(f"{registry.address}/test/two")
    zstd = images.pull(f"{registry.address}/test/two-zstd")
    plain = images.pull(f"{registry.address}/test/two-plain")
    assert busybox.layers[0] == two.layers[0] == zstd.layers[0] == plain.layers[0]
    # Same uncompressed layers, so the same directories, whatever the compression.
    assert two.layers == zstd.layers == plain.layers
    assert len(store_state(images)["layers"]) == 2
    # The image id is the config's digest: recompressing layers keeps the same image.
    assert two.id == zstd.id == plain.id


def test_pull_by_digest_and_resolve_by_digest(registry, images, make_images):
    tagged = images.pull(f"{registry.address}/test/busybox")
    client = RegistryClient(registry.address, CredentialStore(images.store.root / "a.json"))
    _, _, digest = client.get_manifest(parse(f"{registry.address}/test/busybox"))
    pinned = f"{registry.address}/test/busybox@{digest}"
    assert images.resolve(pinned).id == tagged.id
    fresh = make_images(state_root=images.store.root.parent / "other")
    assert fresh.pull(pinned).id == tagged.id
    assert [(r.repository, r.tag) for r in fresh.list()] == [
        (f"{registry.address}/test/busybox", "<none>")
    ]


@pytest.mark.parametrize(
    "platform, expected", [("linux/amd64", "amd64\n"), ("linux/arm64/v8", "arm64v8\n")]
)
def test_multi_platform_index_resolves_to_the_configured_platform(
    registry, make_images, platform, expected
):
    images = make_images(platform=platform)
    image = images.pull(f"{registry.address}/test/multi")
    assert (images.layers_root() / image.layers[-1] / "platform.txt").read_text() == expected
    assert image.config.labels == {"arch": platform.split("/")[1]}


def test_platform_not_in_index_refused(registry, make_images):
    images = make_images(platform="linux/s390x")
    with pytest.raises(UserError, match="no image for platform linux/s390x"):
        images.pull(f"{registry.address}/test/multi")
    assert store_state(images) == EMPTY


def test_unknown_image_and_unreachable_registry(registry, images):
    with pytest.raises(NotFound, match="not found") as error:
        images.pull(f"{registry.address}/test/nothing:here")
    assert "\n" not in str(error.value)
    with pytest.raises(UserError, match="cannot reach registry") as error:
        images.pull(f"127.0.0.1:{free_port()}/test/two")
    assert "\n" not in str(error.value)
    assert store_state(images) == EMPTY


def test_tls_registry_on_loopback_is_reached_over_https(tls_registry, images):
    client = RegistryClient(tls_registry.address, CredentialStore(images.store.root / "a.json"))
    client.get_manifest(parse(f"{tls_registry.address}/test/busybox"))
    assert client.base_url == f"https://{tls_registry.address}"
    assert images.pull(f"{tls_registry.address}/test/two").config.cmd == ["cat /hello.txt"]


def test_plain_registry_on_loopback_is_reached_over_http(registry, images):
    client = RegistryClient(registry.address, CredentialStore(images.store.root / "a.json"))
    client.get_manifest(parse(f"{registry.address}/test/busybox"))
    assert client.base_url == f"http://{registry.address}"


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount overlayfs")
def test_pulled_layers_stack_with_overlayfs(registry, images, tmp_path):
    """The guest stacks layers with overlayfs; do the same here and look inside."""
    image = images.pull(f"{registry.address}/test/two")
    lower = ":".join(str(images.layers_root() / d) for d in reversed(image.layers))
    merged = tmp_path / "merged"
    merged.mkdir()
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lower}", merged], check=True
    )
    try:
        assert (merged / "hello.txt").read_text() == "hello from layer two\n"
        assert not (merged / "bin/vi").exists() and (merged / "bin/ls").is_symlink()
        assert sorted(os.listdir(merged / "usr/sbin")) == ["only-this"]
        run = subprocess.run(
            ["chroot", merged, "/bin/sh", "-c", "cat /hello.txt; vi --help"],
            capture_output=True,
            text=True,
        )
        assert run.stdout == "hello from layer two\n" and run.returncode == 127
    finally:
        subprocess.run(["umount", merged], check=True)


PULL_SCRIPT = """
import sys
from hypercontainer.config import Config
from hypercontainer_plugins.images.driver import OciImages
OciImages(Config(state_root=sys.argv[1])).pull(sys.argv[2])
"""


def test_concurrent_pulls_from_two_processes_share_one_store(registry, images):
    """Three processes, a shared base layer, one store: all succeed, nothing half-done."""
    state_root = str(images.store.root.parent)
    pulls = [
        subprocess.Popen(
            [sys.executable, "-c", PULL_SCRIPT, state_root, f"{registry.address}/test/{name}"]
        )
        for name in ("two", "busybox", "two-zstd")
    ]
    assert [p.wait(timeout=300) for p in pulls] == [0, 0, 0]
    two = images.resolve(f"{registry.address}/test/two")
    busybox = images.resolve(f"{registry.address}/test/busybox")
    assert two.layers[0] == busybox.layers[0]
    state = store_state(images)
    assert len(state["layers"]) == 2 and state["tmp"] == []

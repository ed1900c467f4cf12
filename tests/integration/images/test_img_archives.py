"""Offline archives made by other tools load, and ours are read by other tools."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.registry


def skopeo(*args: str) -> None:
    subprocess.run(
        ["skopeo", "--insecure-policy", *args], check=True, capture_output=True, timeout=300
    )


@pytest.mark.parametrize("transport", ["oci-archive", "docker-archive"])
def test_archives_written_by_skopeo_load(registry, images, make_images, tmp_path, transport):
    pulled = images.pull(f"{registry.address}/test/two")
    archive = tmp_path / "skopeo.tar"
    skopeo(
        "copy",
        "--src-tls-verify=false",
        f"docker://{registry.address}/test/two:latest",
        f"{transport}:{archive}:example.org/test/two:v1",
    )
    loaded_images = make_images(state_root=tmp_path / "offline")
    assert loaded_images.load(archive) == ["example.org/test/two:v1"]
    loaded = loaded_images.resolve("example.org/test/two:v1")
    assert loaded.id == pulled.id and loaded.layers == pulled.layers
    assert (loaded_images.layers_root() / loaded.layers[1] / "hello.txt").exists()


def test_saved_archive_is_read_by_skopeo_and_pulls_back_identical(registry, images, tmp_path):
    original = images.pull(f"{registry.address}/test/two")
    images.save([f"{registry.address}/test/two"], tmp_path / "saved.tar")
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        f"oci-archive:{tmp_path / 'saved.tar'}",
        f"docker://{registry.address}/test/resaved:latest",
    )
    again = images.pull(f"{registry.address}/test/resaved")
    assert again.id == original.id and again.layers == original.layers


def test_busybox_module_archive_loads_and_runs(images, tmp_path):
    """The offline busybox image: load it, then run its shell in the unpacked layer."""
    archive = tmp_path / "busybox.tar"
    subprocess.run(
        [sys.executable, "-m", "hypercontainer_plugins.images.busybox", str(archive)],
        check=True,
    )
    assert images.load(archive) == ["docker.io/library/busybox:latest"]
    image = images.resolve("busybox")
    assert image.config.cmd == ["sh"]
    (rootfs,) = (images.layers_root() / layer for layer in image.layers)
    assert (rootfs / "etc/passwd").read_text().startswith("root:x:0:0:")
    assert (rootfs / "bin/ls").is_symlink()
    run = subprocess.run(
        [rootfs / "bin/busybox", "sh", "-c", "echo $((6 * 7))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout == "42\n"

"""Images the tests build (with the product's own builder) and push to a test registry.

- `busybox()`: the offline busybox image's single layer.
- `two_layers()`: busybox plus a layer that adds a file, whites out an applet
  (bin/vi) and makes usr/sbin opaque (only usr/sbin/only-this remains).
- `multi_platform()`: an index with linux/amd64 and linux/arm64/v8 images that
  differ by one file and one label.
- `bulky(megabytes, layers)`: busybox plus incompressible data, for the bench.
- `host_trees(directories)`: busybox plus one layer per host directory (the bench's
  image of many small files: Debian's Python, Perl and locale files).
"""

from __future__ import annotations

import io
import json
import os
import random
import tarfile
from functools import cache
from pathlib import Path

from hypercontainer_plugins.images import build
from hypercontainer_plugins.images import busybox as busybox_image
from hypercontainer_plugins.images.build import Blob, Image, Layer

Built = tuple[Blob, list[Blob]]  # top blob (manifest or index), every other blob


@cache
def busybox_layer_tar() -> bytes:
    return busybox_image.rootfs_layer().tar()


class _Prebuilt(Layer):
    """A layer whose tar is already made (the busybox one is built once per run)."""

    def __init__(self, tar: bytes) -> None:
        super().__init__()
        self._tar = tar

    def tar(self) -> bytes:
        return self._tar


def busybox_base() -> Layer:
    return _Prebuilt(busybox_layer_tar())


def busybox(compression: str = "gzip") -> Built:
    return Image([busybox_base()], compression=compression, cmd=["sh"]).build()


def second_layer() -> Layer:
    """Adds a file, hides the vi applet, and replaces what usr/sbin held by one file."""
    return (
        Layer()
        .file("hello.txt", b"hello from layer two\n")
        .whiteout("bin/vi")
        .opaque("usr/sbin")
        .file("usr/sbin/only-this", b"#!/bin/sh\necho only\n", mode=0o755)
        .dir("home/user")
    )


def two_layers(compression: str = "gzip") -> Built:
    image = Image(
        [busybox_base(), second_layer()],
        compression=compression,
        entrypoint=["/bin/sh", "-c"],
        cmd=["cat /hello.txt"],
        working_dir="/home/user",
        labels={"test": "two-layers"},
    )
    return image.build()


def platform_image(architecture: str, variant: str = "") -> Image:
    marker = Layer().file("platform.txt", f"{architecture}{variant}\n".encode())
    return Image(
        [busybox_base(), marker],
        architecture=architecture,
        variant=variant,
        labels={"arch": architecture},
    )


def multi_platform() -> Built:
    return build.multi_platform([platform_image("amd64"), platform_image("arm64", "v8")])


def bulky(megabytes: int, layers: int, seed: int = 0) -> Built:
    """busybox plus `layers` layers of random (incompressible) data."""
    per_layer = megabytes * 2**20 // layers
    data_layers = []
    for i in range(layers):
        chunk = _random_bytes(per_layer, seed * 1000 + i)
        data_layers.append(Layer().file(f"data/blob-{i}.bin", chunk))
    return Image([busybox_base(), *data_layers], compression="gzip").build()


def host_trees(directories: list[str]) -> Built:
    """busybox plus one layer per directory of this machine, copied as it is (files,
    directories, symbolic links; modes kept, times and owners fixed)."""
    return Image(
        [busybox_base(), *(host_tree_layer(Path(d)) for d in directories)], compression="gzip"
    ).build()


def host_tree_layer(top: Path) -> Layer:
    layer = Layer()
    for directory, dirnames, filenames in os.walk(top):
        dirnames.sort()
        base = Path(directory)
        layer.dir(str(base).lstrip("/"), mode=base.stat().st_mode & 0o7777)
        for name in sorted(filenames + [d for d in dirnames if (base / d).is_symlink()]):
            path = base / name
            relative = str(path).lstrip("/")
            if path.is_symlink():
                layer.symlink(relative, os.readlink(path))
            elif path.is_file():
                layer.file(relative, path.read_bytes(), mode=path.stat().st_mode & 0o7777)
    return layer


def _random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def write_layout(directory: Path, images: dict[str, Built]) -> Path:
    """An OCI layout holding `images` by ref name (what `skopeo copy oci:` reads)."""
    named = [(name, top, blobs) for name, (top, blobs) in images.items()]
    build.write_layout(directory, named, verbatim=True)
    return directory


def write_archive(path: Path, images: dict[str, Built]) -> Path:
    build.write_archive(path, [(name, top, blobs) for name, (top, blobs) in images.items()])
    return path


def layer_digests(built: Built) -> list[str]:
    """Digests of the layer blobs of a single-platform image, bottom first."""
    top, _ = built
    return [layer["digest"] for layer in json.loads(top.data)["layers"]]


def config_digest(built: Built) -> str:
    return json.loads(built[0].data)["config"]["digest"]


def is_root() -> bool:
    return os.geteuid() == 0


def write_tar(path: Path, files: dict[str, bytes]) -> Path:
    """A plain tar of regular files, name -> content (hand-made archives, good or bad)."""
    with tarfile.open(path, "w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path

"""Build small OCI images from Python: layers, config, manifest, index, layout.

Used by the offline busybox image (`busybox.py`) and by the tests to make
images to push to a registry. Output is reproducible: entries are written
in the order given, with fixed times and owners unless told otherwise.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

from . import digests, manifest
from .fsutil import atomic_write

EPOCH = 0  # mtime of every entry: same input, same digest
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


class Layer:
    """The entries of one layer tar, in order."""

    def __init__(self) -> None:
        self._entries: list[tuple[tarfile.TarInfo, bytes | None]] = []

    def raw(self, info: tarfile.TarInfo, data: bytes | None = None) -> Layer:
        """Any entry at all, hostile ones included (tests use this)."""
        if data is not None:
            info.size = len(data)
        self._entries.append((info, data))
        return self

    def dir(self, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Layer:
        return self.raw(_info(path, tarfile.DIRTYPE, mode, uid, gid))

    def file(self, path: str, data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0) -> Layer:
        return self.raw(_info(path, tarfile.REGTYPE, mode, uid, gid), data)

    def symlink(self, path: str, target: str) -> Layer:
        info = _info(path, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        return self.raw(info)

    def hardlink(self, path: str, target: str) -> Layer:
        info = _info(path, tarfile.LNKTYPE, 0o644)
        info.linkname = target
        return self.raw(info)

    def whiteout(self, path: str) -> Layer:
        """Hide `path` of the layers below (AUFS-style `.wh.` marker, as in OCI)."""
        parent, _, name = path.rstrip("/").rpartition("/")
        return self.file(f"{parent}/.wh.{name}" if parent else f".wh.{name}", b"")

    def opaque(self, directory: str) -> Layer:
        """Hide everything the layers below have in `directory`."""
        return self.file(f"{directory.rstrip('/')}/.wh..wh..opq", b"")

    def tar(self) -> bytes:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
            for info, data in self._entries:
                archive.addfile(info, io.BytesIO(data) if data is not None else None)
        return out.getvalue()


def _info(path: str, kind: bytes, mode: int, uid: int = 0, gid: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, uid, gid, EPOCH
    info.uname = info.gname = "root" if uid == 0 else ""
    return info


@dataclass
class Blob:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return digests.of_bytes(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        size = len(self.data)
        return {"mediaType": self.media_type, "digest": self.digest, "size": size, **extra}


def compress(tar: bytes, compression: str) -> Blob:
    """A layer blob: the tar compressed with "gzip", "zstd" or "" (not at all)."""
    if compression == "gzip":
        return Blob(f"{LAYER_TAR}+gzip", gzip.compress(tar, compresslevel=6, mtime=0))
    if compression == "zstd":
        return Blob(f"{LAYER_TAR}+zstd", zstandard.ZstdCompressor().compress(tar))
    return Blob(LAYER_TAR, tar)


@dataclass
class Image:
    """An image for one platform: its layers and the container settings."""

    layers: list[Layer]
    compression: str = "gzip"
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=lambda: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"])
    working_dir: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    os: str = "linux"
    architecture: str = "amd64"
    variant: str = ""
    created: str = "1970-01-01T00:00:00Z"

    def build(self) -> tuple[Blob, list[Blob]]:
        """(manifest, [config, layers...]): every blob the image consists of."""
        tars = [layer.tar() for layer in self.layers]
        layer_blobs = [compress(t, self.compression) for t in tars]
        diff_ids = [digests.of_bytes(t) for t in tars]
        config = Blob(manifest.OCI_CONFIG, canonical_json(self._config(diff_ids)))
        body = {
            "schemaVersion": 2,
            "mediaType": manifest.OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": [b.descriptor() for b in layer_blobs],
        }
        return Blob(manifest.OCI_MANIFEST, canonical_json(body)), [config, *layer_blobs]

    @property
    def platform(self) -> dict[str, str]:
        platform = {"os": self.os, "architecture": self.architecture}
        return platform | ({"variant": self.variant} if self.variant else {})

    def _config(self, diff_ids: list[str]) -> dict[str, Any]:
        container: dict[str, Any] = {"Env": self.env}
        for key, value in (
            ("Entrypoint", self.entrypoint),
            ("Cmd", self.cmd),
            ("WorkingDir", self.working_dir),
            ("Labels", self.labels),
        ):
            if value:
                container[key] = value
        return {
            "created": self.created,
            **self.platform,
            "config": container,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [
                {"created": self.created, "created_by": "hypercontainer build"} for _ in diff_ids
            ],
        }


def multi_platform(images: list[Image]) -> tuple[Blob, list[Blob]]:
    """An OCI index over `images`, and every blob below it."""
    blobs: list[Blob] = []
    entries = []
    for image in images:
        top, rest = image.build()
        blobs += [top, *rest]
        entries.append(top.descriptor(platform=image.platform))
    index = {"schemaVersion": 2, "mediaType": manifest.OCI_INDEX, "manifests": entries}
    return Blob(manifest.OCI_INDEX, canonical_json(index)), blobs


# -- OCI image layout (a directory) and OCI archive (the same, as a tar) -------

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"


def layout_entries(
    named: list[tuple[str, Blob, list[Blob]]], verbatim: bool = False
) -> dict[str, bytes]:
    """Files of an OCI layout holding each (name, top blob, other blobs).

    By default a full name ("docker.io/library/busybox:latest") is written as
    containerd and Docker do: the name in `io.containerd.image.name`, the tag
    as `org.opencontainers.image.ref.name`. With `verbatim`, the name goes
    as it is into ref.name, the form `skopeo copy oci:DIR:NAME` looks up.
    """
    files: dict[str, bytes] = {"oci-layout": canonical_json({"imageLayoutVersion": "1.0.0"})}
    entries = []
    for name, top, blobs in named:
        for blob in (top, *blobs):
            files[f"blobs/sha256/{digests.hex_of(blob.digest)}"] = blob.data
        annotations = {REF_NAME: name} if verbatim else _name_annotations(name)
        entries.append(top.descriptor(annotations=annotations))
    index = {"schemaVersion": 2, "mediaType": manifest.OCI_INDEX, "manifests": entries}
    files["index.json"] = canonical_json(index)
    return files


def _name_annotations(name: str) -> dict[str, str]:
    if "/" not in name:
        return {REF_NAME: name}
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[1] else "latest"
    return {CONTAINERD_NAME: name, REF_NAME: tag}


def write_layout(
    directory: Path, named: list[tuple[str, Blob, list[Blob]]], verbatim: bool = False
) -> None:
    for relative, data in layout_entries(named, verbatim).items():
        atomic_write(directory / relative, data)


def write_archive(path: Path, named: list[tuple[str, Blob, list[Blob]]]) -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for relative, data in layout_entries(named).items():
            info = _info(relative, tarfile.REGTYPE, 0o644)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    atomic_write(path, out.getvalue())

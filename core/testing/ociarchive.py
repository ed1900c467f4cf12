"""A tiny image as an OCI archive, made with the standard library: what the kit loads
into an images driver, so that no test needs a registry or a download."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

NAME = "docker.io/library/hc-tiny:latest"  # what `hc-tiny` means to an images driver
CONTAINERD_NAME = "io.containerd.image.name"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _layer(files: dict[str, bytes]) -> bytes:
    """An uncompressed layer tar of regular files (parent directories included)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directories = sorted(
            {"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}
        )
        for directory in directories:
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def write(
    path: Path,
    name: str = NAME,
    cmd: tuple[str, ...] = ("sleep", "infinity"),
    files: dict[str, bytes] | None = None,
) -> Path:
    """Write an OCI archive holding one linux/amd64 image called `name`."""
    layer = _layer(files or {"bin/hello": b"#!/bin/sh\necho hello\n"})
    blob = gzip.compress(layer, mtime=0)
    config = _json(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": list(cmd), "Env": ["PATH=/bin"], "Labels": {"made-by": "hc-kit"}},
            "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]},
        }
    )
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": _digest(blob),
                    "size": len(blob),
                }
            ],
        }
    )
    index = _json(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": _digest(manifest),
                    "size": len(manifest),
                    "platform": {"architecture": "amd64", "os": "linux"},
                    "annotations": {CONTAINERD_NAME: name},
                }
            ],
        }
    )
    members = {"oci-layout": _json({"imageLayoutVersion": "1.0.0"}), "index.json": index}
    for data in (config, manifest, blob):
        members["blobs/sha256/" + _digest(data).removeprefix("sha256:")] = data
    with tarfile.open(path, "w") as tar:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def image_id(path: Path) -> str:
    """The id (config digest) of the image in an archive written by write()."""
    with tarfile.open(path) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        digest = index["manifests"][0]["digest"].removeprefix("sha256:")
        manifest = json.load(tar.extractfile(f"blobs/sha256/{digest}"))  # type: ignore[arg-type]
    return manifest["config"]["digest"]

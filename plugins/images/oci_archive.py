"""OCI archives: an OCI image layout (oci-layout, index.json, blobs/) in a tar.

Reading resolves each entry of index.json to one platform's manifest and
names it from its annotations; writing puts each image's manifest and blobs
in a new archive, atomically.
"""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
import tempfile
from pathlib import Path
from typing import BinaryIO

from hypercontainer.errors import UserError

from . import digests, manifest
from .archive_source import ArchiveSource, Loadable, tagged
from .build import CONTAINERD_NAME, REF_NAME, canonical_json
from .index import ImageRecord
from .manifest import Descriptor, Manifest, Platform
from .reference import parse
from .store import Store


def loadables(source: ArchiveSource, default_registry: str, platform: Platform) -> list[Loadable]:
    """One image per distinct manifest index.json names, for `platform`."""
    index_info = source.members["index.json"]
    body = source.file(index_info).read(manifest.MAX_MANIFEST_SIZE + 1)
    index = manifest.parse(body, manifest.OCI_INDEX)
    if not isinstance(index, manifest.Index):
        raise UserError("archive index.json is not an image index")
    found: dict[str, Loadable] = {}
    for entry in index.manifests:
        loadable = _resolve(source, entry, platform)
        loadable = found.setdefault(loadable.digest, loadable)
        name = _name(entry.annotations, default_registry)
        if name and name not in loadable.names:
            loadable.names.append(name)
    return list(found.values())


def _resolve(source: ArchiveSource, entry: Descriptor, platform: Platform) -> Loadable:
    for _ in range(3):
        what = f"manifest {digests.short(entry.digest)}"
        body = source.read(entry, manifest.MAX_MANIFEST_SIZE, what)
        parsed = manifest.parse(body, entry.media_type)
        if isinstance(parsed, Manifest):
            return Loadable(body, entry.digest, parsed)
        entry = manifest.select(parsed, platform)
    raise UserError("archive has indexes nested too deep")


def _name(annotations: dict[str, str], default_registry: str) -> str | None:
    """The image's name: containerd's full name, else ref.name when it is a reference.

    A bare ref.name ("latest") is only a tag, with no repository: such an
    image loads untagged, as with Docker.
    """
    name = annotations.get(CONTAINERD_NAME) or annotations.get(REF_NAME, "")
    if not name or ("/" not in name and ":" not in name):
        return None
    return str(tagged(parse(name, default_registry)))


def save(store: Store, images: list[tuple[ImageRecord, list[str]]], path: Path) -> None:
    """Write `images` (each with the names to give it) as one OCI archive, atomically."""
    entries = []
    blobs: dict[str, None] = {}
    for record, names in images:
        descriptor = {
            "mediaType": record.manifest_media_type,
            "digest": record.manifest_digest,
            "size": record.manifest_size,
        }
        if record.platform:
            os_, _, arch = record.platform.partition("/")
            arch, _, variant = arch.partition("/")
            descriptor["platform"] = {"os": os_, "architecture": arch} | (
                {"variant": variant} if variant else {}
            )
        given: list[str | None] = list(names) or [None]
        for name in given:
            annotations = _save_annotations(name)
            entries.append(descriptor | ({"annotations": annotations} if annotations else {}))
        blobs.update(dict.fromkeys(sorted(record.blobs())))
    index = {"schemaVersion": 2, "mediaType": manifest.OCI_INDEX, "manifests": entries}
    files = {
        "oci-layout": canonical_json({"imageLayoutVersion": "1.0.0"}),
        "index.json": canonical_json(index),
    }
    _write_tar(store, path, files, list(blobs))


def _save_annotations(name: str | None) -> dict[str, str]:
    if not name:
        return {}
    return {CONTAINERD_NAME: name, REF_NAME: parse(name).tag or "latest"}


def _write_tar(store: Store, path: Path, files: dict[str, bytes], blobs: list[str]) -> None:
    if not path.parent.is_dir():
        raise UserError(f"{path.parent} is not a directory")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, mode="w") as tar:
            for name, data in files.items():
                _add(tar, name, len(data), io.BytesIO(data))
            for digest in blobs:
                blob = store.blobs.path(digest)
                with blob.open("rb") as f:
                    _add(tar, f"blobs/{digest.replace(':', '/', 1)}", blob.stat().st_size, f)
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _add(tar: tarfile.TarFile, name: str, size: int, reader: BinaryIO) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    tar.addfile(info, reader)

"""Offline images: load OCI archives and docker-archive tarballs, save OCI archives.

An OCI archive is an OCI image layout (oci-layout, index.json, blobs/) in a
tar; a docker-archive (`docker save`) has a manifest.json naming each
image's config and layer tars. Both load through the same verified import
as a pull. A compressed archive (gzip, zstd) is decompressed to a temporary
file first: a tar needs random access to its blobs.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from hypercontainer.errors import UserError

from . import digests, manifest
from .build import CONTAINERD_NAME, LAYER_TAR, REF_NAME, canonical_json
from .decompress import TarStream, sniff
from .importer import Importer, Limits, Progress
from .index import ImageRecord
from .manifest import Descriptor, Manifest, Platform
from .reference import Reference, parse
from .store import Store

CHUNK = 1 << 20


@dataclass
class Loadable:
    body: bytes
    digest: str
    parsed: Manifest
    names: list[str] = field(default_factory=list)


@dataclass
class ArchiveSource:
    """Blobs read from the archive's members; tarfile is not thread-safe: one at a time."""

    tar: tarfile.TarFile
    members: dict[str, tarfile.TarInfo]
    paths: dict[str, str] = field(default_factory=dict)  # digest -> member, docker-archive
    workers: int = 1

    def member(self, digest: str) -> tarfile.TarInfo:
        name = self.paths.get(digest) or f"blobs/{digest.replace(':', '/', 1)}"
        try:
            return self.members[name]
        except KeyError:
            raise UserError(f"archive lacks blob {digest}") from None

    def chunks(self, descriptor: Descriptor) -> Iterator[bytes]:
        yield from _read_chunks(self.tar.extractfile(self.member(descriptor.digest)))

    def read(self, descriptor: Descriptor, limit: int, what: str) -> bytes:
        if descriptor.size > limit:
            raise UserError(f"{what} larger than {limit} bytes")
        data = self.tar.extractfile(self.member(descriptor.digest)).read(limit + 1)
        if len(data) != descriptor.size:
            raise UserError(f"{what}: size mismatch (expected {descriptor.size}, got {len(data)})")
        digests.verify_bytes(data, descriptor.digest, what)
        return data


def load(
    store: Store, path: Path, default_registry: str, platform: Platform, limits: Limits
) -> list[str]:
    """Import every image of the archive at `path`; returns what was loaded."""
    with store.writing(), _opened(path, store.tmp, limits) as tar:
        members = {_normal(m.name): m for m in tar.getmembers() if m.isreg()}
        source = ArchiveSource(tar, members)
        if "index.json" in members:
            images = _oci_images(source, default_registry, platform)
        elif "manifest.json" in members:
            images = _docker_images(source, default_registry)
        else:
            raise UserError(f"{path}: neither an OCI archive nor a docker-archive tarball")
        importer = Importer(store, source, limits, Progress(None))
        records = [(importer.run(i.body, i.digest, i.parsed), i.names) for i in images]
        for record, names in records:  # all images in, or none named
            store.index.add(record, names, [])
    return [name for record, names in records for name in (names or [record.id])]


@contextlib.contextmanager
def _opened(path: Path, tmp: Path, limits: Limits) -> Iterator[tarfile.TarFile]:
    try:
        with path.open("rb") as f:
            compressed = sniff(f.read(4))
    except OSError as e:
        raise UserError(f"{path}: {e.strerror}") from None
    plain = path
    if compressed:
        tmp.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp, prefix="archive-")
        plain = Path(name)
        with path.open("rb") as f, os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(TarStream(f, limits.max_layer_size, str(path)), out, CHUNK)
    try:
        with tarfile.open(plain, "r:") as tar:
            yield tar
    except (tarfile.TarError, EOFError) as e:
        raise UserError(f"{path}: not a valid tar archive ({e})") from None
    finally:
        if plain != path:
            plain.unlink()


def _normal(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name


def _oci_images(source: ArchiveSource, default_registry: str, platform: Platform) -> list[Loadable]:
    index_info = source.members["index.json"]
    body = source.tar.extractfile(index_info).read(manifest.MAX_MANIFEST_SIZE + 1)
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
    return str(_tagged(parse(name, default_registry)))


def _tagged(ref: Reference) -> Reference:
    if ref.digest:
        raise UserError(f"archive names an image by digest ({ref}); a tag is needed")
    return ref


def _docker_images(source: ArchiveSource, default_registry: str) -> list[Loadable]:
    raw = source.tar.extractfile(source.members["manifest.json"]).read(
        manifest.MAX_MANIFEST_SIZE + 1
    )
    try:
        entries = json.loads(raw)
    except ValueError as e:
        raise UserError(f"archive manifest.json is not valid JSON: {e}") from None
    if not isinstance(entries, list):
        raise UserError("archive manifest.json is not a list")
    return [_docker_image(source, entry, default_registry) for entry in entries]


def _docker_image(source: ArchiveSource, entry: object, default_registry: str) -> Loadable:
    if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
        raise UserError("archive manifest.json has a malformed entry")
    layers = entry.get("Layers") or []
    tags = entry.get("RepoTags") or []
    if not isinstance(layers, list) or not isinstance(tags, list):
        raise UserError("archive manifest.json has malformed Layers or RepoTags")
    config_info = _member(source, entry["Config"])
    if config_info.size > manifest.MAX_CONFIG_SIZE:
        raise UserError("image config too large")
    config = source.tar.extractfile(config_info).read()
    config_digest = digests.of_bytes(config)
    source.paths[config_digest] = _normal(entry["Config"])
    layer_descriptors = [_docker_layer(source, name) for name in layers]
    body = canonical_json({
        "schemaVersion": 2,
        "mediaType": manifest.OCI_MANIFEST,
        "config": {"mediaType": manifest.OCI_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": [d.to_json() for d in layer_descriptors],
    })
    parsed = manifest.parse(body)
    names = [str(_tagged(parse(str(t), default_registry))) for t in tags]
    return Loadable(body, digests.of_bytes(body), parsed, names)


def _docker_layer(source: ArchiveSource, name: object) -> Descriptor:
    info = _member(source, name)
    compression = sniff(source.tar.extractfile(info).read(4))
    hasher = hashlib.sha256()
    for chunk in _read_chunks(source.tar.extractfile(info)):
        hasher.update(chunk)
    digest = f"sha256:{hasher.hexdigest()}"
    source.paths[digest] = _normal(info.name)
    media_type = f"{LAYER_TAR}+{compression}" if compression else LAYER_TAR
    return Descriptor(media_type, digest, info.size)


def _member(source: ArchiveSource, name: object) -> tarfile.TarInfo:
    if not isinstance(name, str) or _normal(name) not in source.members:
        raise UserError(f"archive lacks {str(name)[:200]!r}")
    return source.members[_normal(name)]


def _read_chunks(reader: BinaryIO | None) -> Iterator[bytes]:
    if reader is None:
        return
    while chunk := reader.read(CHUNK):
        yield chunk


# -- save ---------------------------------------------------------------------


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
        for name in names or [None]:
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


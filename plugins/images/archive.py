"""Offline images: load OCI archives and docker-archive tarballs.

Both load through the same verified import as a pull, all of an archive's
images or none. A compressed archive (gzip, zstd) is decompressed to a
temporary file first: a tar needs random access to its blobs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import zstandard
from hypercontainer.errors import UserError

from . import docker_archive, oci_archive
from .archive_source import CHUNK, ArchiveSource, normal
from .decompress import TarStream, sniff
from .importer import Importer, Limits, Progress
from .manifest import Platform
from .oci_archive import save
from .store import Store

__all__ = ["load", "save"]


def load(
    store: Store, path: Path, default_registry: str, platform: Platform, limits: Limits
) -> list[str]:
    """Import every image of the archive at `path`; returns what was loaded."""
    with store.writing(), _opened(path, store.tmp, limits) as tar:
        members = {normal(m.name): m for m in tar.getmembers() if m.isreg()}
        source = ArchiveSource(tar, members)
        if "index.json" in members:
            images = oci_archive.loadables(source, default_registry, platform)
        elif "manifest.json" in members:
            images = docker_archive.loadables(source, default_registry)
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
    try:
        if compressed:
            tmp.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=tmp, prefix="archive-")
            plain = Path(name)
            with path.open("rb") as f, os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(TarStream(f, limits.max_layer_size, str(path)), out, CHUNK)
        with tarfile.open(plain, "r:") as tar:
            yield tar
    except (tarfile.TarError, EOFError, zlib.error, zstandard.ZstdError) as e:
        raise UserError(f"{path}: not a valid archive ({e})") from None
    finally:
        if plain != path:
            plain.unlink()

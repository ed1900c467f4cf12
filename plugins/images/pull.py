"""Pull: resolve a reference to one platform's manifest, then import its blobs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from hypercontainer.errors import UserError

from . import manifest
from .importer import Importer, Limits, Progress
from .index import ImageRecord
from .manifest import Descriptor, Manifest, Platform
from .reference import Reference
from .registry import RegistryClient
from .store import Store

MAX_INDEX_DEPTH = 3  # an index may name an index; no real image nests deeper


@dataclass
class RegistrySource:
    client: RegistryClient
    ref: Reference
    workers: int

    def chunks(self, descriptor: Descriptor) -> Iterator[bytes]:
        return self.client.blob_chunks(self.ref, descriptor.digest)


def resolve_manifest(
    client: RegistryClient, ref: Reference, platform: Platform
) -> tuple[bytes, str, Manifest, str]:
    """(body, digest, manifest, top-level digest) of `ref` for `platform`."""
    body, media_type, digest = client.get_manifest(ref)
    top_digest = digest
    for _ in range(MAX_INDEX_DEPTH):
        parsed = manifest.parse(body, media_type)
        if isinstance(parsed, Manifest):
            return body, digest, parsed, top_digest
        chosen = manifest.select(parsed, platform)
        body, media_type, digest = client.get_manifest(ref, chosen.digest)
        if len(body) != chosen.size:
            raise UserError(f"manifest {chosen.digest}: size differs from the index's")
    raise UserError(f"{ref}: indexes nested deeper than {MAX_INDEX_DEPTH}")


def pull(
    store: Store,
    client: RegistryClient,
    ref: Reference,
    platform: Platform,
    limits: Limits,
    workers: int,
    progress: Progress,
) -> ImageRecord:
    body, digest, parsed, top_digest = resolve_manifest(client, ref, platform)
    source = RegistrySource(client, ref, workers)
    with store.writing():
        record = Importer(store, source, limits, progress).run(body, digest, parsed, str(platform))
        tags = [str(ref)] if ref.tag and not ref.digest else []
        store.index.add(record, tags, [str(ref.with_digest(top_digest))])
    return record

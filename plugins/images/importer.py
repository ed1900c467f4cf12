"""Bring one image into the store from a source of blobs (a registry, an archive).

Every blob is verified against its descriptor on the way in; layers are
fetched and unpacked concurrently when the source allows it, and each one
reports its progress. The caller holds `Store.writing()` and records the
returned image in the index once this succeeds.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from hypercontainer.drivers import ProgressCallback
from hypercontainer.errors import UserError

from . import digests, imageconfig
from .decompress import size_limit
from .index import ImageRecord, LayerRecord
from .manifest import MAX_CONFIG_SIZE, Descriptor, Manifest
from .parallel import Cancelled, run_all
from .store import Store


class BlobSource(Protocol):
    workers: int  # how many blobs may be read at the same time

    def chunks(self, descriptor: Descriptor) -> Iterator[bytes]:
        """The blob's bytes as they come; the importer verifies them."""


@dataclass(frozen=True)
class Limits:
    max_layer_size: int
    max_compression_ratio: int

    def for_blob(self, compressed_size: int) -> int:
        """Decompressed bytes allowed for a layer blob of this size."""
        return size_limit(compressed_size, self.max_layer_size, self.max_compression_ratio)


class Progress:
    """Serialises progress events from worker threads into one callback."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self._callback = callback
        self._lock = threading.Lock()

    def __call__(
        self, digest: str, status: str, current: int = 0, total: int = 0, **extra: str
    ) -> None:
        if self._callback is None:
            return
        event = {
            "id": digests.short(digest),
            "status": status,
            "current": current,
            "total": total,
            **extra,
        }
        with self._lock:
            self._callback(event)


@dataclass
class Importer:
    store: Store
    source: BlobSource
    limits: Limits
    progress: Progress

    def run(self, body: bytes, digest: str, parsed: Manifest, platform: str = "") -> ImageRecord:
        config = imageconfig.parse(self._small_blob(parsed.config))
        if len(config.diff_ids) != len(parsed.layers):
            raise UserError(
                f"image config lists {len(config.diff_ids)} layers, "
                f"the manifest {len(parsed.layers)}"
            )
        self.store.blobs.put(body, digest)
        layers = [
            LayerRecord(d.digest, d.media_type, d.size, diff_id)
            for d, diff_id in zip(parsed.layers, config.diff_ids, strict=True)
        ]
        sizes = self._fetch_layers(layers)
        return ImageRecord(
            id=parsed.config.digest,
            manifest_digest=digest,
            manifest_media_type=parsed.media_type,
            manifest_size=len(body),
            config_media_type=parsed.config.media_type,
            config_size=parsed.config.size,
            layers=layers,
            created=config.created,
            size=sum(sizes.values()),
            platform=platform or f"{config.os}/{config.architecture}",
            added=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        )

    def _small_blob(self, descriptor: Descriptor) -> bytes:
        if descriptor.size > MAX_CONFIG_SIZE:
            raise UserError(f"image config larger than {MAX_CONFIG_SIZE} bytes")
        if not self.store.blobs.has(descriptor.digest):
            self.store.blobs.ingest(
                self.source.chunks(descriptor),
                descriptor.digest,
                descriptor.size,
                what=f"config {digests.short(descriptor.digest)}",
            )
        return self.store.blobs.read(descriptor.digest)

    def _fetch_layers(self, layers: list[LayerRecord]) -> dict[str, int]:
        """Fetch and unpack each distinct layer; returns diff id -> unpacked size."""
        unique = list({(layer.digest, layer.diff_id): layer for layer in layers}.values())
        for layer in unique:
            self.progress(layer.digest, "waiting", 0, layer.size)
        # The largest first: it takes longest, and the pull is done only when it is.
        largest_first = sorted(unique, key=lambda layer: -layer.size)
        sizes = run_all(self._layer, largest_first, self.source.workers)
        return {layer.diff_id: size for layer, size in zip(largest_first, sizes, strict=True)}

    def _layer(self, layer: LayerRecord, cancel: threading.Event) -> int:
        what = f"layer {digests.short(layer.digest)}"
        have_blob = self.store.blobs.has(layer.digest)
        have_layer = self.store.has_layer(layer.diff_id)
        if have_blob and have_layer:
            self.progress(layer.digest, "exists", layer.size, layer.size)
            return self.store.index.layer_size(layer.diff_id) or 0
        limit = self.limits.for_blob(layer.size)
        if have_blob:  # unpacked layers went (garbage collection), the blob stayed
            self.progress(layer.digest, "extracting", layer.size, layer.size)
            size = self.store.unpack_layer(layer.digest, layer.diff_id, limit, what)
        elif have_layer:  # the same files came before in another blob: only store this one
            with self._blob_writer(layer, what) as blob:
                for chunk in self._chunks(layer, cancel):
                    blob.write(chunk)
                blob.commit()
            size = self.store.index.layer_size(layer.diff_id) or 0
        else:  # the usual case: one pass, unpacked while it downloads
            with self._blob_writer(layer, what) as blob:
                size = self.store.unpack_download(
                    self._chunks(layer, cancel), blob, layer.diff_id, limit, what
                )
        self.progress(layer.digest, "done", layer.size, layer.size)
        return size

    def _chunks(self, layer: LayerRecord, cancel: threading.Event) -> Iterator[bytes]:
        descriptor = Descriptor(layer.media_type, layer.digest, layer.size)
        for chunk in self.source.chunks(descriptor):
            if cancel.is_set():
                raise Cancelled()
            yield chunk

    def _blob_writer(self, layer: LayerRecord, what: str):
        def report(written: int) -> None:
            # Unpacking keeps pace with the download: what is left once all has come
            # is the tail of the extraction and the two digests.
            status = "verifying" if written == layer.size else "downloading"
            self.progress(layer.digest, status, written, layer.size)

        self.progress(layer.digest, "downloading", 0, layer.size)
        return self.store.blobs.writer(layer.digest, layer.size, what, progress=report)

"""The image store under `<state root>/images`.

    blobs/sha256/<hex>         manifests, configs and layer blobs, verified
    layers/sha256/<diff id>/   each layer unpacked once, shared by every image
    index.db                   references -> images (SQLite, WAL)
    tmp/                       work in progress, renamed into place when complete
    lock                       writers share it; garbage collection takes it alone

The directory is mode 0700: unpacked layers hold set-uid binaries and device
nodes that must not be reachable by other users of the host.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from hypercontainer.errors import UserError
from hypercontainer.log import get_logger

from . import digests
from .blobstore import BlobStore, BlobWriter
from .fsutil import locked, remove_tree
from .index import ImageRecord, Index
from .unpack import opaque_list_path, read_opaque_list, unpack

log = get_logger()


class Store:
    def __init__(self, root: Path, privileged: bool | None = None) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o700)
        self.tmp = root / "tmp"
        self.layers = root / "layers"
        self.blobs = BlobStore(root / "blobs", self.tmp)
        self.index = Index(root / "index.db")
        self.privileged = os.geteuid() == 0 if privileged is None else privileged
        self._lock = root / "lock"

    # -- layers ---------------------------------------------------------------

    def layer_relpath(self, diff_id: str) -> str:
        digests.parse(diff_id)
        return f"{digests.algorithm(diff_id)}/{digests.hex_of(diff_id)}"

    def layer_path(self, diff_id: str) -> Path:
        return self.layers / self.layer_relpath(diff_id)

    def layer_opaque_dirs(self, diff_id: str) -> list[str]:
        return read_opaque_list(self.layer_path(diff_id))

    def has_layer(self, diff_id: str) -> bool:
        return self.layer_path(diff_id).is_dir() and self.index.layer_size(diff_id) is not None

    def unpack_layer(self, blob_digest: str, diff_id: str, limit: int, what: str) -> int:
        """Unpack a stored blob as the layer `diff_id` unless already there; its size."""
        size = self.index.layer_size(diff_id)
        dest = self.layer_path(diff_id)
        if dest.is_dir():
            # Published means complete (it is renamed into place only when verified);
            # the size may be missing if its unpacker died just after the rename.
            if size is None:
                size = _content_size(dest)
                self.index.record_layer(diff_id, size)
            return size
        result = unpack(
            self.blobs.path(blob_digest),
            dest,
            self.tmp,
            limit,
            what,
            expected_diff_id=diff_id,
            privileged=self.privileged,
        )
        self.index.record_layer(diff_id, result.size)
        return result.size

    def unpack_download(
        self, chunks: Iterable[bytes], blob: BlobWriter, diff_id: str, limit: int, what: str
    ) -> int:
        """One pass over a layer blob as it downloads: stored as `blob` and unpacked as the
        layer `diff_id`. The layer is published only after both digests matched and the
        blob was stored; on any failure neither is left."""
        source = blob.reader(chunks)

        def store_blob() -> None:
            source.drain()
            blob.commit()

        try:
            result = unpack(
                source,
                self.layer_path(diff_id),
                self.tmp,
                limit,
                what,
                expected_diff_id=diff_id,
                privileged=self.privileged,
                before_publish=store_blob,
            )
        except UserError:
            # A blob damaged on the way fails to unpack before its digest can be checked:
            # say what is wrong with the blob, if anything, rather than with its content.
            if not source.broken:
                source.drain()
                blob.verify()
            raise
        self.index.record_layer(diff_id, result.size)
        return result.size

    # -- writers and the collector -------------------------------------------

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Keep the collector away while content is read (e.g. saved to an archive)."""
        with locked(self._lock, exclusive=False):
            yield

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Add content; if anything fails, what was added and is unused goes again."""
        try:
            with locked(self._lock, exclusive=False):
                yield
        except BaseException:
            self.collect()
            raise

    def collect(self) -> list[str]:
        """Delete every blob and layer no image refers to; returns the layers deleted."""
        with locked(self._lock, exclusive=True):
            images = self.index.images()
            used_blobs = set().union(*(r.blobs() for r in images))
            used_layers = set().union(*(r.diff_ids() for r in images))
            for digest in set(self.blobs.all()) - used_blobs:
                self.blobs.remove(digest)
            gone = self._stored_layers() - used_layers
            for diff_id in gone:
                remove_tree(self.layer_path(diff_id))
                opaque_list_path(self.layer_path(diff_id)).unlink(missing_ok=True)
            self.index.delete_layers(self.index.layer_ids() - used_layers)
            remove_tree(self.tmp)  # nobody else writes while we hold the lock alone
        if gone:
            log.debug("layers collected", count=len(gone))
        return sorted(gone)

    def _stored_layers(self) -> set[str]:
        found = set()
        for algo_dir in self.layers.glob("*"):
            found |= {f"{algo_dir.name}:{d.name}" for d in algo_dir.iterdir()}
        return {d for d in found if digests.is_valid(d)}

    # -- images ---------------------------------------------------------------

    def image(self, image_id: str) -> ImageRecord:
        record = self.index.image(image_id)
        if record is None:
            raise UserError(f"image {image_id} vanished from the store")
        return record

    def check_complete(self, record: ImageRecord) -> None:
        """Refuse an image whose content was damaged behind the store's back."""
        for diff_id in record.diff_ids():
            if not self.layer_path(diff_id).is_dir():
                raise UserError(
                    f"image {digests.short(record.id)} is incomplete (layer "
                    f"{digests.short(diff_id)} missing); remove it and pull it again"
                )


def _content_size(directory: Path) -> int:
    """Bytes of regular files under `directory`, as unpacking counts them."""
    total = 0
    for parent, _, files in os.walk(directory):
        for name in files:
            info = os.lstat(os.path.join(parent, name))
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total

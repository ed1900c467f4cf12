"""Content-addressed blobs: `blobs/sha256/<hex>`, each verified before it appears.

A blob is written to a private temporary file while its digest and size are
checked, then renamed into place: a reader sees a complete, verified blob or
none. Two processes fetching the same blob both succeed; the second rename
replaces identical content.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from hypercontainer.errors import UserError

from . import digests


class BlobStore:
    def __init__(self, root: Path, tmp: Path) -> None:
        self.root = root
        self.tmp = tmp

    def path(self, digest: str) -> Path:
        digests.parse(digest)
        return self.root / digests.algorithm(digest) / digests.hex_of(digest)

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def read(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()

    def all(self) -> Iterator[str]:
        """Every stored digest."""
        for algo_dir in self.root.glob("*"):
            for blob in algo_dir.iterdir():
                digest = f"{algo_dir.name}:{blob.name}"
                if digests.is_valid(digest):
                    yield digest

    def put(self, data: bytes, digest: str | None = None) -> str:
        """Store `data` (verified against `digest` when given); returns its digest."""
        digest = digest or digests.of_bytes(data)
        self.ingest([data], digest, len(data), what=f"blob {digests.short(digest)}")
        return digest

    def ingest(
        self,
        chunks: Iterable[bytes],
        digest: str,
        size: int,
        what: str,
        progress: Callable[[int], None] | None = None,
    ) -> Path:
        """Stream `chunks` into the store, refusing any byte that does not match."""
        target = self.path(digest)
        self.tmp.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="blob-")
        try:
            with os.fdopen(fd, "wb") as f:
                actual = _copy_verified(chunks, f, digest, size, what, progress)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp_name, 0o644)
            if actual != digest:
                raise UserError(f"{what}: digest mismatch (expected {digest}, got {actual})")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(tmp_name, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        return target

    def remove(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(digest).unlink()


def _copy_verified(chunks, out, digest: str, size: int, what: str, progress) -> str:
    hasher = digests.hasher(digest)
    written = 0
    for chunk in chunks:
        written += len(chunk)
        if written > size:
            raise UserError(f"{what}: more data than the announced {size} bytes")
        hasher.update(chunk)
        out.write(chunk)
        if progress:
            progress(written)
    if written != size:
        raise UserError(f"{what}: size mismatch (expected {size} bytes, got {written})")
    return f"{digests.algorithm(digest)}:{hasher.hexdigest()}"

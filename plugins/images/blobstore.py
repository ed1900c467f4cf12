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
from typing import BinaryIO

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
        with self.writer(digest, size, what, progress) as blob:
            for chunk in chunks:
                blob.write(chunk)
            return blob.commit()

    @contextlib.contextmanager
    def writer(
        self, digest: str, size: int, what: str, progress: Callable[[int], None] | None = None
    ) -> Iterator[BlobWriter]:
        """A blob being written; whatever was not committed when the block ends is deleted."""
        target = self.path(digest)
        self.tmp.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="blob-")
        blob = BlobWriter(os.fdopen(fd, "wb"), Path(tmp_name), target, digest, size, what, progress)
        try:
            yield blob
        finally:
            blob.file.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)

    def remove(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(digest).unlink()


class BlobWriter:
    """A blob arriving chunk by chunk: counted and hashed on the way, stored by `commit()`
    only if it is exactly what its descriptor says."""

    def __init__(
        self,
        file: BinaryIO,
        tmp: Path,
        target: Path,
        digest: str,
        size: int,
        what: str,
        progress: Callable[[int], None] | None,
    ) -> None:
        self.file, self.tmp, self.target = file, tmp, target
        self.digest, self.size, self.what = digest, size, what
        self.progress = progress
        self.written = 0
        self._hash = digests.hasher(digest)

    def write(self, chunk: bytes) -> None:
        self.written += len(chunk)
        if self.written > self.size:
            raise UserError(f"{self.what}: more data than the announced {self.size} bytes")
        self._hash.update(chunk)
        self.file.write(chunk)
        if self.progress:
            self.progress(self.written)

    def reader(self, chunks: Iterable[bytes]) -> Tee:
        """A file-like reader of `chunks` that writes each one here as it is read."""
        return Tee(iter(chunks), self.write)

    def verify(self) -> None:
        """Refuse the blob unless every byte came and they hash to its digest."""
        if self.written > self.size:
            raise UserError(f"{self.what}: more data than the announced {self.size} bytes")
        if self.written != self.size:
            raise UserError(
                f"{self.what}: size mismatch (expected {self.size} bytes, got {self.written})"
            )
        actual = f"{digests.algorithm(self.digest)}:{self._hash.hexdigest()}"
        if actual != self.digest:
            raise UserError(f"{self.what}: digest mismatch (expected {self.digest}, got {actual})")

    def commit(self) -> Path:
        self.verify()
        self.file.flush()
        os.fsync(self.file.fileno())  # measured: a few ms per blob here (docs/benchmarks.md)
        os.fchmod(self.file.fileno(), 0o644)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(self.tmp, self.target)
        return self.target


class Tee:
    """`read(n)` over an iterator of chunks, handing each chunk to `sink` once."""

    def __init__(self, chunks: Iterator[bytes], sink: Callable[[bytes], None]) -> None:
        self._chunks = chunks
        self._sink = sink
        self._chunk = b""
        self._pos = 0
        self.broken = False  # the chunks' source failed (e.g. the download was cut)

    def _next(self) -> bytes:
        try:
            return next(self._chunks, b"")
        except BaseException:
            self.broken = True
            raise

    def read(self, n: int = -1) -> bytes:
        if self._pos == len(self._chunk):
            self._chunk, self._pos = self._next(), 0
            if not self._chunk:
                return b""
            self._sink(self._chunk)
        if self._pos == 0 and (n is None or n < 0 or n >= len(self._chunk)):
            self._pos = len(self._chunk)
            return self._chunk  # the whole chunk: no copy
        end = len(self._chunk) if n is None or n < 0 else self._pos + n
        data = self._chunk[self._pos : end]
        self._pos += len(data)
        return data

    def drain(self) -> None:
        """Take in every chunk not read yet (bytes after the end of the compressed data)."""
        self._chunk, self._pos = b"", 0
        while chunk := self._next():
            self._sink(chunk)

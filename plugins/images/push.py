"""Push: upload an image's blobs, then its manifest, with the OCI distribution API.

For each blob (the config and every layer), a few at a time:

    HEAD  blobs/<digest>                          200: the repository has it; skip it
    POST  blobs/uploads/?mount=<digest>&from=<r>  201: mounted from repository <r> of the
                                                  same registry (one the image came from
                                                  or went to); 202: not mounted, an upload
    POST  blobs/uploads/                          202 + Location: an upload session
    PUT   <location>?digest=<digest> + the blob   monolithic, up to `chunk_size` bytes
    PATCH <location> + Content-Range, a chunk     chunked: each answer names the next
    PUT   <location>?digest=<digest>              Location; the digest closes the upload

then `PUT manifests/<tag>` with the manifest exactly as stored, so the image keeps its
digest. Every request carries the same credentials and answers the same challenges
as a pull (scope `pull,push`, plus `pull` on a repository mounted from).
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests
from hypercontainer.errors import DriverError, UserError

from . import digests
from .importer import Progress
from .index import ImageRecord
from .parallel import Cancelled, run_all
from .reference import Reference
from .registry import RegistryClient
from .store import Store

OCTETS = "application/octet-stream"
READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    layer: bool  # layers are shown in the progress; the config is not


class BlobReader:
    """`length` bytes of a file from `start`, as a request body, counted as they are sent."""

    def __init__(
        self,
        path: Path,
        start: int,
        length: int,
        sent: Callable[[int], None],
        cancel: threading.Event,
    ) -> None:
        self._file = path.open("rb")
        self._file.seek(start)
        self._left = length
        self._length = length
        self._sent = sent
        self._cancel = cancel

    def __len__(self) -> int:  # requests sends it as the Content-Length
        return self._length

    def read(self, _size: int = -1) -> bytes:
        if self._cancel.is_set():
            raise Cancelled()
        data = self._file.read(min(READ_CHUNK, self._left))
        if self._left and not data:
            raise UserError(f"{self._file.name}: shorter than its recorded size")
        self._left -= len(data)
        self._sent(len(data))
        return data

    def close(self) -> None:
        self._file.close()


@dataclass
class Pusher:
    store: Store
    client: RegistryClient
    dest: Reference
    mount_sources: list[str]  # other repositories of the same registry holding the image
    chunk_size: int
    workers: int
    progress: Progress

    def run(self, record: ImageRecord) -> str:
        """Upload `record` to `dest`; the pushed manifest's digest."""
        body = self._stored(record.manifest_digest, record.manifest_size, record).read_bytes()
        blobs = [Blob(record.id, record.config_size, False)]
        blobs += list(
            {layer.digest: Blob(layer.digest, layer.size, True) for layer in record.layers}.values()
        )
        for blob in blobs:
            self._stored(blob.digest, blob.size, record)
            if blob.layer:
                self.progress(blob.digest, "preparing", 0, blob.size)
        run_all(self._blob, blobs, self.workers)
        return self._put_manifest(body, record.manifest_media_type, record.manifest_digest)

    # -- blobs ----------------------------------------------------------------

    def _blob(self, blob: Blob, cancel: threading.Event) -> None:
        def report(status: str, current: int = 0, **extra: str) -> None:
            if blob.layer:
                self.progress(blob.digest, status, current, blob.size, **extra)

        if self._exists(blob):
            report("present", blob.size)
            return
        location, min_chunk = None, 0
        for source in self.mount_sources:
            location, min_chunk = self._start(blob, mount_from=source)
            if location is None:
                report("mounted", blob.size, **{"from": source})
                return
            if source != self.mount_sources[-1]:
                self._abandon(location)  # the next source gets its own attempt
        if location is None:
            location, min_chunk = self._start(blob)
        if location is None:  # only a mount (not asked for here) gives none
            raise DriverError(f"{self.dest}: the registry gave no upload location")
        sent = 0

        def count(n: int) -> None:
            nonlocal sent
            sent += n
            report("pushing", sent)

        path = self.store.blobs.path(blob.digest)
        chunk = max(self.chunk_size, min_chunk)
        if blob.size <= chunk:
            self._finish(blob, location, path, 0, blob.size, count, cancel)
        else:
            offset = 0
            while blob.size - offset > 0:
                length = min(chunk, blob.size - offset)
                location = self._patch(blob, location, path, offset, length, count, cancel)
                offset += length
            self._finish(blob, location, path, offset, 0, count, cancel)
        report("pushed", blob.size)

    def _exists(self, blob: Blob) -> bool:
        with self.client.request("HEAD", self.dest, f"blobs/{blob.digest}", push=True) as answer:
            if answer.status_code in (200, 404):
                return answer.status_code == 200
            raise self.client.refused(self.dest, answer, self._what(blob))

    def _start(self, blob: Blob, mount_from: str | None = None) -> tuple[str | None, int]:
        """(upload location, or None when the blob was mounted; the registry's least chunk)."""
        query = {"mount": blob.digest, "from": mount_from} if mount_from else None
        with self.client.request(
            "POST", self.dest, "blobs/uploads/", push=True, mount_from=mount_from, params=query
        ) as answer:
            if mount_from and answer.status_code == 201:
                return None, 0
            if answer.status_code != 202:
                raise self.client.refused(self.dest, answer, self._what(blob))
            minimum = answer.headers.get("OCI-Chunk-Min-Length", "")
            return self._location(answer, blob), int(minimum) if minimum.isdigit() else 0

    def _patch(
        self,
        blob: Blob,
        location: str,
        path: Path,
        offset: int,
        length: int,
        count: Callable[[int], None],
        cancel: threading.Event,
    ) -> str:
        headers = {"Content-Type": OCTETS, "Content-Range": f"{offset}-{offset + length - 1}"}
        with self._sending(
            blob, location, "PATCH", path, offset, length, count, cancel, headers
        ) as answer:
            if answer.status_code != 202:
                raise self.client.refused(self.dest, answer, self._what(blob))
            stored = answer.headers.get("Range", "")
            if stored and stored != f"0-{offset + length - 1}":
                raise UserError(
                    f"{self._what(blob)}: registry {self.client.registry} holds "
                    f"bytes {stored} of the upload, not 0-{offset + length - 1}"
                )
            return self._location(answer, blob)

    def _finish(
        self,
        blob: Blob,
        location: str,
        path: Path,
        offset: int,
        length: int,
        count: Callable[[int], None],
        cancel: threading.Event,
    ) -> None:
        separator = "&" if "?" in location else "?"
        url = f"{location}{separator}digest={urllib.parse.quote(blob.digest)}"
        with self._sending(
            blob, url, "PUT", path, offset, length, count, cancel, {"Content-Type": OCTETS}
        ) as answer:
            if answer.status_code not in (201, 204):
                raise self.client.refused(self.dest, answer, self._what(blob))

    def _sending(
        self,
        blob: Blob,
        url: str,
        method: str,
        path: Path,
        offset: int,
        length: int,
        count: Callable[[int], None],
        cancel: threading.Event,
        headers: dict[str, str],
    ) -> requests.Response:
        readers: list[BlobReader] = []

        def body() -> BlobReader | bytes:
            if not length:
                return b""
            for reader in readers:  # a request sent again starts its part from the beginning
                reader.close()
            readers.append(BlobReader(path, offset, length, count, cancel))
            return readers[-1]

        try:
            return self.client.request(
                method,
                self.dest,
                url,
                push=True,
                body=body,
                headers={**headers, "Content-Length": str(length)},
            )
        finally:
            for reader in readers:
                reader.close()

    def _abandon(self, location: str) -> None:
        try:
            self.client.request("DELETE", self.dest, location, push=True).close()
        except UserError:
            pass  # the registry forgets abandoned uploads by itself

    def _location(self, answer: requests.Response, blob: Blob) -> str:
        location = answer.headers.get("Location", "")
        if not location:
            raise UserError(
                f"{self._what(blob)}: registry {self.client.registry} gave no upload location"
            )
        # Relative to the request answered (RFC 9110): an upload on a storage host stays there.
        return urllib.parse.urljoin(answer.url, location)

    # -- the manifest ---------------------------------------------------------

    def _put_manifest(self, body: bytes, media_type: str, digest: str) -> str:
        tag = self.dest.tag or "latest"
        with self.client.request(
            "PUT",
            self.dest,
            f"manifests/{tag}",
            push=True,
            body=lambda: body,
            headers={"Content-Type": media_type},
        ) as answer:
            if answer.status_code not in (200, 201):
                raise self.client.refused(self.dest, answer, f"manifest of {self.dest}")
            announced = answer.headers.get("Docker-Content-Digest", "")
        if announced and announced != digest:
            raise UserError(
                f"registry {self.client.registry} stored the manifest of "
                f"{self.dest} as {announced}, not {digest}"
            )
        return digest

    # -- helpers --------------------------------------------------------------

    def _stored(self, digest: str, size: int, record: ImageRecord) -> Path:
        path = self.store.blobs.path(digest)
        try:
            ok = path.stat().st_size == size
        except FileNotFoundError:
            ok = False
        if not ok:
            raise UserError(
                f"image {digests.short(record.id)} is incomplete (blob "
                f"{digests.short(digest)} missing); remove it and pull it again"
            )
        return path

    def _what(self, blob: Blob) -> str:
        kind = "layer" if blob.layer else "config"
        return f"push of {kind} {digests.short(blob.digest)} to {self.dest.name}"


def mount_sources(refs: list[str], dest: Reference, parse) -> list[str]:
    """Repositories of `dest`'s registry that hold the image, by what the store knows."""
    found: list[str] = []
    for text in refs:
        ref = parse(text)
        if ref.registry == dest.registry and ref.repository != dest.repository:
            if ref.repository not in found:
                found.append(ref.repository)
    return found

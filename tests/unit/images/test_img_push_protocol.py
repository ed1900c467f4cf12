"""Push paths a real docker-registry does not take, played by a scripted registry.

tests/integration/images/test_img_push.py pushes to Debian's docker-registry; that
registry never asks for a least chunk size, never lets a token expire in the middle
of a push and never sends uploads to another host. This registry does, one at a time:

- `OCI-Chunk-Min-Length` larger than `push_chunk_size`: every chunk but the last is
  at least that long;
- a token that expires in the middle of a chunked upload: the chunk answered 401 is
  sent again whole, with a new token, and the push completes;
- an upload `Location` on another host (a storage service): that host is never sent
  the registry's credentials, and the relative Locations it answers with stay on it.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import random
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypercontainer.config import Config
from hypercontainer_plugins.images import build
from hypercontainer_plugins.images.build import Image, Layer
from hypercontainer_plugins.images.driver import OciImages

USER, PASSWORD = "pusher", "secret"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


@dataclass(eq=False)  # one request each: two alike chunks are still two
class Seen:
    method: str
    path: str
    authorization: str | None
    length: int


@dataclass
class Script:
    """What the registry asks of its client, and what it saw."""

    min_chunk: int = 0
    expire_after_first_chunk: bool = False
    uploads_elsewhere: str = ""  # the storage host's base URL, when uploads go there
    tokens: list[str] = field(default_factory=list)
    expired: set[str] = field(default_factory=set)
    refused: list[Seen] = field(default_factory=list)  # sent with an expired token
    uploads: dict[str, bytearray] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, bytes] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    storage_seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Handler(http.server.BaseHTTPRequestHandler):
    """The registry (token auth) when `storage` is false, else the host uploads go to."""

    script: Script
    storage = False

    def _serve(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = urllib.parse.urlsplit(self.path)
        script = self.script
        with script.lock:
            seen = Seen(self.command, url.path, self.headers.get("Authorization"), len(body))
            (script.storage_seen if self.storage else script.seen).append(seen)
        if self.storage:
            return self._upload(url, body)
        if url.path == "/token":
            return self._token()
        if not self._authorized():
            if seen.authorization:
                script.refused.append(seen)
            return self._challenge()
        if url.path == "/v2/":
            return self._send(200)
        if self.command == "HEAD" and "/blobs/sha256:" in url.path:
            return self._send(404)
        if self.command == "POST" and url.path.endswith("/blobs/uploads/"):
            return self._start_upload(url.path)
        if "/blobs/uploads/" in url.path:
            return self._upload(url, body)
        if self.command == "PUT" and "/manifests/" in url.path:
            script.manifests[url.path.rsplit("/", 1)[1]] = body
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
            return self._send(201, {"Docker-Content-Digest": digest})
        return self._send(404)

    def _token(self) -> None:
        if self.headers.get("Authorization") != BASIC:
            return self._send(401)
        with self.script.lock:
            token = f"t{len(self.script.tokens)}"
            self.script.tokens.append(token)
        self._send(200, body=json.dumps({"token": token}).encode())

    def _authorized(self) -> bool:
        given = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        return given in self.script.tokens and given not in self.script.expired

    def _challenge(self) -> None:
        realm = f"http://{self.headers['Host']}/token"
        self._send(401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="scripted"'})

    def _start_upload(self, path: str) -> None:
        session = uuid.uuid4().hex
        self.script.uploads[session] = bytearray()
        base = self.script.uploads_elsewhere
        location = f"{base}/upload/{session}" if base else f"{path}{session}"
        headers = {"Location": location}
        if self.script.min_chunk:
            headers["OCI-Chunk-Min-Length"] = str(self.script.min_chunk)
        self._send(202, headers)

    def _upload(self, url: urllib.parse.SplitResult, body: bytes) -> None:
        script = self.script
        session = url.path.rsplit("/", 1)[1]
        data = script.uploads[session]
        data += body
        if self.command == "PATCH":
            if script.expire_after_first_chunk and not script.expired:
                script.expired.update(script.tokens)  # from the next request on
            return self._send(202, {"Location": url.path, "Range": f"0-{len(data) - 1}"})
        digest = urllib.parse.parse_qs(url.query)["digest"][0]
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            return self._send(400)
        script.blobs[digest] = bytes(data)
        self._send(201, {"Location": f"/v2/blobs/{digest}"})

    def _send(self, status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass

    # Every method is one script: what it answers depends on the path and the state.
    do_GET = do_HEAD = do_POST = do_PATCH = do_PUT = do_DELETE = _serve


def serving(handler: type[Handler]) -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def registry(script) -> Iterator[str]:
    handler = type("Registry", (Handler,), {"script": script})
    yield from serving(handler)


@pytest.fixture
def storage(script) -> Iterator[str]:
    handler = type("Storage", (Handler,), {"script": script, "storage": True})
    yield from serving(handler)


def holding_big(tmp_path, registry: str, uploads: int = 3) -> OciImages:
    """A store holding `big:1` (a small layer and an incompressible ~300 KB one), logged in
    to the scripted registry, pushing chunks of 64 KiB, `uploads` blobs at a time."""
    config = Config(state_root=tmp_path / "state").with_table(
        "oci", push_chunk_size=1 << 16, concurrent_uploads=uploads
    )
    driver = OciImages(config)
    data = random.Random(3).randbytes(300_000)
    image = Image([Layer().file("small", b"tiny\n"), Layer().file("big.bin", data)])
    archive = tmp_path / "big.tar"
    build.write_archive(archive, [("docker.io/library/big:1", *image.build())])
    driver.load(archive)
    driver.login(registry, USER, PASSWORD)
    return driver


@pytest.fixture
def images(tmp_path, registry) -> OciImages:
    return holding_big(tmp_path, registry)


def stored_blobs(images: OciImages) -> dict[str, int]:
    record = images.store.image(images.resolve("big:1").id)
    layers = {layer.digest: layer.size for layer in record.layers}
    return {record.id: record.config_size, **layers}


def pushed_whole(images: OciImages, script: Script) -> None:
    """Every blob of big:1 reached the registry intact, and its manifest as stored."""
    record = images.store.image(images.resolve("big:1").id)
    assert {d: len(b) for d, b in script.blobs.items()} == stored_blobs(images)
    assert hashlib.sha256(script.manifests["1"]).hexdigest() == record.manifest_digest[7:]


def test_chunks_are_never_shorter_than_the_registry_s_least_chunk(images, registry, script):
    script.min_chunk = 1 << 17  # twice push_chunk_size
    images.push("big:1", f"{registry}/team/big:1")

    pushed_whole(images, script)
    patches = [s.length for s in script.seen if s.method == "PATCH"]
    big = max(stored_blobs(images).values())
    assert len(patches) == -(-big // script.min_chunk)  # ceil: chunks of the least size
    assert all(length == script.min_chunk for length in patches[:-1]), patches
    assert sum(patches) == big


def test_a_token_that_expires_mid_push_is_renewed_and_the_chunk_sent_again(
    tmp_path, registry, script
):
    images = holding_big(tmp_path, registry, uploads=1)  # the second chunk meets the expiry
    script.expire_after_first_chunk = True
    images.push("big:1", f"{registry}/team/big:1")

    pushed_whole(images, script)
    (refused,) = script.refused  # the second chunk, with the token the push began with
    assert refused.method == "PATCH" and refused.length == 1 << 16
    assert refused.authorization == f"Bearer {script.tokens[-2]}"
    after = script.seen[script.seen.index(refused) + 1 :]
    assert after[0].path == "/token"  # a new token asked for at once
    again = after[1]
    assert (again.method, again.path, again.length) == (refused.method, refused.path, 1 << 16)
    assert again.authorization == f"Bearer {script.tokens[-1]}" != refused.authorization


def test_an_upload_on_another_host_is_never_sent_the_registry_s_credentials(
    images, registry, storage, script
):
    script.uploads_elsewhere = f"http://{storage}"
    images.push("big:1", f"{registry}/team/big:1")

    pushed_whole(images, script)
    assert {s.method for s in script.storage_seen} == {"PATCH", "PUT"}
    assert [s.authorization for s in script.storage_seen] == [None] * len(script.storage_seen)
    # No byte of a blob went to the registry; it was asked with its token throughout.
    assert not [s for s in script.seen if s.method in ("PATCH", "PUT") and "/uploads/" in s.path]
    assert all(s.authorization for s in script.seen if s.path not in ("/v2/", "/token"))

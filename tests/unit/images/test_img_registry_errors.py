"""Registry misbehaviour a real docker-registry will not produce, from a scripted server.

The happy paths run against Debian's docker-registry in tests/integration/images;
this small HTTP server only plays the faults: a connection cut mid-blob, a lying
Docker-Content-Digest header, a schema-1 answer, a server error, a redirect.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

import pytest
from hypercontainer.config import Config
from hypercontainer.errors import UserError
from hypercontainer_plugins.images.build import Blob, Image, Layer, canonical_json
from hypercontainer_plugins.images.driver import OciImages

MANIFEST, BLOBS = Image([Layer().file("f", b"x" * 5000)]).build()


def with_wrong_diff_id() -> tuple[Blob, list[Blob]]:
    """The same layer, under a config that names another diff id for it."""
    config = json.loads(BLOBS[0].data)
    config["rootfs"]["diff_ids"] = ["sha256:" + "1" * 64]
    bad_config = Blob(BLOBS[0].media_type, canonical_json(config))
    manifest = json.loads(MANIFEST.data)
    manifest["config"] = bad_config.descriptor()
    return Blob(MANIFEST.media_type, canonical_json(manifest)), [bad_config, *BLOBS[1:]]


WRONG_DIFF_MANIFEST, WRONG_DIFF_BLOBS = with_wrong_diff_id()


def damaged_gzip_mtime(data: bytes) -> bytes:
    """The blob with its gzip header's MTIME changed: it still inflates to the very same
    tar (the CRC covers the content only), but no longer hashes to its digest."""
    changed = bytearray(data)
    changed[4] ^= 0xFF
    return bytes(changed)


class Scripted(http.server.BaseHTTPRequestHandler):
    faults: dict[str, str] = {}
    seen_authorization: list[str | None] = []

    def do_GET(self) -> None:
        parts = self.path.split("/")
        repository = parts[parts.index("test") + 1] if "test" in parts else ""
        fault = self.faults.get(repository, "")
        if self.path == "/v2/":
            return self._send(200, b"{}")
        if "/manifests/" in self.path:
            if fault == "schema1":
                body = json.dumps({"schemaVersion": 1, "fsLayers": []}).encode()
                return self._send(200, body, "application/vnd.docker.distribution.manifest.v1+json")
            if fault == "error":
                return self._send(500, b'{"errors":[{"code":"UNKNOWN","message":"boom"}]}')
            top = WRONG_DIFF_MANIFEST if fault == "wrong-diff-id" else MANIFEST
            digest = "sha256:" + "0" * 64 if fault == "lying-digest" else top.digest
            return self._send(200, top.data, top.media_type, digest)
        if "/blobs/" in self.path:
            self.seen_authorization.append(self.headers.get("Authorization"))
            blob = next(b for b in BLOBS + WRONG_DIFF_BLOBS if self.path.endswith(b.digest))
            is_layer = blob.media_type.endswith("gzip")
            if fault == "gzip-mtime" and is_layer:
                return self._send(200, damaged_gzip_mtime(blob.data), "application/octet-stream")
            if fault == "cut-late" and is_layer:  # most of the layer, then the connection goes
                self.send_response(200)
                self.send_header("Content-Length", str(len(blob.data)))
                self.end_headers()
                self.wfile.write(blob.data[: len(blob.data) * 9 // 10])
                self.close_connection = True
                return None
            if fault == "redirect" and not self.path.startswith("/moved"):
                self.send_response(307)
                self.send_header("Location", f"/moved{self.path}")
                self.end_headers()
                return None
            if fault == "cut" and blob.media_type.endswith("gzip"):
                self.send_response(200)
                self.send_header("Content-Length", str(len(blob.data)))
                self.end_headers()
                self.wfile.write(blob.data[:100])
                self.close_connection = True
                return None
            return self._send(200, blob.data, "application/octet-stream")
        return self._send(404, b"{}")

    def _send(
        self, status: int, body: bytes, content_type: str = "application/json", digest: str = ""
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if digest:
            self.send_header("Docker-Content-Digest", digest)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    Scripted.faults, Scripted.seen_authorization = {}, []
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def images(tmp_path) -> OciImages:
    return OciImages(Config(state_root=tmp_path / "state"))


def nothing_stored(images: OciImages) -> bool:
    root = images.store.root
    return (
        not list(images.store.blobs.all())
        and not images.store.index.refs()
        and not list((root / "layers").glob("*/*"))
        and not list((root / "tmp").glob("*"))
    )


@pytest.mark.parametrize(
    "repository, message",
    [
        ("cut", "download failed|size mismatch"),
        ("lying-digest", "digest mismatch"),
        ("schema1", "schema 1"),
        ("error", "answered 500 Internal Server Error: UNKNOWN boom"),
        # The streaming path: unpacked while downloading, committed only if both match.
        ("gzip-mtime", "layer .*: digest mismatch"),  # content fine, blob not: nothing kept
        ("wrong-diff-id", "uncompressed digest .* does not match the image config's"),
        ("cut-late", "download failed: the connection was cut"),
    ],
)
def test_misbehaving_registry_gives_one_line_and_no_trace(server, images, repository, message):
    Scripted.faults = {repository: repository}
    with pytest.raises(UserError, match=message) as error:
        images.pull(f"{server}/test/{repository}")
    assert "\n" not in str(error.value)
    assert nothing_stored(images)


def test_blob_redirect_is_followed(server, images):
    Scripted.faults = {"redirect": "redirect"}
    image = images.pull(f"{server}/test/redirect")
    assert (images.layers_root() / image.layers[0] / "f").read_bytes() == b"x" * 5000

"""Hostile images, end to end: hand-built OCI archives through `hyperctl load`.

Each archive of the corpus is refused with one line, or loaded with what it
holds contained in the image store. After each, the host is checked: a
canary directory the layers aim at, the daemon's own files outside its image
store, and every place a layer names (/tmp, /etc, /) are as they were; after
a refusal the store itself is unchanged too. (The extraction rules are also
unit-tested in tests/unit/images/test_img_unpack.py; this is the same
defence reached the way a user reaches it.)
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import secrets
import stat
import struct
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypercontainer_plugins.images import build, manifest
from hypercontainer_plugins.images.build import Blob, Image, Layer

from tests.reliability.support import finish, tree
from tests.support.daemon import Hyperd
from tests.support.imagebuild import write_tar

TOKEN = secrets.token_hex(4)
PWNED = f"hc-pwned-{TOKEN}"  # the name every escape tries to create
CLIMB = "../" * 12  # from anywhere in the store, far above /
BOMB_SIZE = 200 << 20  # zeros; gzip makes ~200 KB of them, over the default 100x ratio


@dataclass
class Case:
    build: Callable[[Path], dict[str, bytes]]  # canary dir -> files of an OCI layout
    outcome: str  # "refused" or "contained"
    mention: str = ""  # what a refusal must say


def base() -> Layer:
    return Layer().dir("bin").file("bin/tool", b"#!/bin/sh\necho tool\n", mode=0o755)


def image(*layers: Layer) -> dict[str, bytes]:
    built = Image([base(), *layers]).build()
    return build.layout_entries([(f"x.io/hostile/{TOKEN}:latest", *built)])


def tampered(files: dict[str, bytes], kind: str) -> dict[str, bytes]:
    """The layout with its manifest, config or top layer blob changed by one byte."""
    top = json.loads(files["index.json"])["manifests"][0]["digest"]
    digest = top
    if kind != "manifest":
        body = json.loads(files[_blob(top)])
        digest = body["config"]["digest"] if kind == "config" else body["layers"][-1]["digest"]
    data = files[_blob(digest)]
    return {**files, _blob(digest): data[:-1] + bytes([data[-1] ^ 1])}


def _blob(digest: str) -> str:
    return "blobs/" + digest.replace(":", "/")


def gzip_bomb() -> dict[str, bytes]:
    """One layer: a tar of BOMB_SIZE zero bytes, gzip'd in a stream (never held whole),
    its gzip trailer declaring 1 KiB; the config's diff id is the true one."""
    header = tarfile.TarInfo("zeros")
    header.size = BOMB_SIZE
    head = header.tobuf(tarfile.PAX_FORMAT)
    tail = bytes(-BOMB_SIZE % 512 + 1024)  # padding, then the end-of-archive blocks
    diff = hashlib.sha256(head)
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = [packer.compress(head)]
    chunk = bytes(1 << 20)
    for _ in range(BOMB_SIZE >> 20):
        diff.update(chunk)
        out.append(packer.compress(chunk))
    diff.update(tail)
    out += [packer.compress(tail), packer.flush()]
    data = b"".join(out)
    data = data[:-4] + struct.pack("<I", 1024)  # ISIZE: "1 KiB uncompressed"
    layer = Blob(f"{build.LAYER_TAR}+gzip", data)
    config = Blob(
        manifest.OCI_CONFIG,
        build.canonical_json(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff.hexdigest()}"]},
            }
        ),
    )
    top = Blob(
        manifest.OCI_MANIFEST,
        build.canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": manifest.OCI_MANIFEST,
                "config": config.descriptor(),
                "layers": [layer.descriptor()],
            }
        ),
    )
    return build.layout_entries([(f"x.io/hostile/bomb-{TOKEN}:latest", top, [config, layer])])


def device(path: str, kind: bytes, major: int = 0, minor: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.type, info.mode, info.devmajor, info.devminor = kind, 0o666, major, minor
    return info


CORPUS: dict[str, Case] = {
    "path traversal to /tmp": Case(
        lambda canary: image(Layer().file(f"{CLIMB}tmp/{PWNED}", b"x")), "refused", "'..'"
    ),
    "path traversal into the daemon's own directories": Case(
        lambda canary: image(Layer().file(f"../../../{PWNED}", b"x")), "refused", "'..'"
    ),
    "absolute path": Case(
        lambda canary: image(Layer().file(f"/etc/{PWNED}", b"x")), "refused", "absolute"
    ),
    "symlink to the host, then a write through it": Case(
        lambda canary: image(Layer().symlink("link", str(canary)).file(f"link/{PWNED}", b"x")),
        "refused",
        "symlink",
    ),
    "climbing symlink, then a write through it": Case(
        lambda canary: image(
            Layer().symlink("up", CLIMB.rstrip("/")).file(f"up/tmp/{PWNED}", b"x")
        ),
        "refused",
        "symlink",
    ),
    "symlink in one layer, a write through it in the next": Case(
        lambda canary: image(
            Layer().symlink("link", str(canary)), Layer().file(f"link/{PWNED}", b"x")
        ),
        "contained",
    ),
    "hard link to a host file": Case(
        lambda canary: image(Layer().hardlink("h", str(canary / "secret"))), "refused", "absolute"
    ),
    "hard link climbing to a host file": Case(
        lambda canary: image(Layer().hardlink("h", f"{CLIMB}{canary}/secret".replace("//", "/"))),
        "refused",
        "'..'",
    ),
    "device nodes and a fifo": Case(
        lambda canary: image(
            Layer()
            .dir("dev")
            .raw(device("dev/mem", tarfile.CHRTYPE, 1, 1))
            .raw(device("dev/sda", tarfile.BLKTYPE, 8, 0))
            .raw(device("dev/fifo", tarfile.FIFOTYPE))
        ),
        "contained",
    ),
    "whiteout of ..": Case(
        lambda canary: image(Layer().file("bin/.wh..", b"")), "refused", "whiteout"
    ),
    "whiteout of .. at the top": Case(
        lambda canary: image(Layer().file(".wh..", b"")), "refused", "whiteout"
    ),
    "gzip bomb declaring a small size": Case(
        lambda canary: gzip_bomb(), "refused", "decompression bomb"
    ),
    "manifest whose digest does not match": Case(
        lambda canary: tampered(image(Layer().file("f", b"x")), "manifest"), "refused", "digest"
    ),
    "config whose digest does not match": Case(
        lambda canary: tampered(image(Layer().file("f", b"x")), "config"), "refused", "digest"
    ),
    "layer whose digest does not match": Case(
        lambda canary: tampered(image(Layer().file("f", b"x")), "layer"), "refused", "digest"
    ),
    "archive member outside the layout": Case(
        lambda canary: {
            **image(Layer().file("f", b"x")),
            f"{CLIMB}tmp/{PWNED}": b"x",
            f"/tmp/{PWNED}": b"x",
        },
        "contained",
    ),
}


@pytest.fixture(scope="module")
def daemon():
    hyperd = Hyperd().start()  # default limits: the bomb must trip the shipped ones
    try:
        hyperd.load_busybox()  # a store that holds something already
        yield hyperd
    finally:
        finish(hyperd)


@pytest.fixture
def canary(tmp_path) -> Path:
    place = tmp_path / "canary"
    (place / "sub").mkdir(parents=True)
    (place / "secret").write_text("original")
    return place


def host(daemon: Hyperd, canary: Path) -> dict[str, object]:
    """Everything a hostile layer could reach outside the image store."""
    store = daemon.state_root / "images"

    def churn(path: Path) -> bool:  # the store, and files that change on their own
        return (
            path == store
            or store in path.parents
            or path.name.startswith("state.db")
            or path.name == "hyperd.log"
        )

    return {
        "canary": tree(canary),
        "daemon": tree(daemon.root, churn),
        "escapes": sorted(
            str(p)
            for top in (Path("/tmp"), Path("/etc"), Path("/"), daemon.root, daemon.state_root)
            for p in top.glob(f"*{TOKEN}*")
        ),
    }


def store(daemon: Hyperd) -> dict[str, tuple]:
    """The image store's files; its index database is compared through `hyperctl images`."""
    root = daemon.state_root / "images"
    return tree(root, lambda path: path == root / "tmp" or path.name.startswith("index.db"))


@pytest.mark.parametrize("case", list(CORPUS))
def test_hostile_archive_is_refused_or_contained(daemon, canary, tmp_path, case):
    files = CORPUS[case].build(canary)
    archive = write_tar(tmp_path / "hostile.tar", files)
    host_before, store_before = host(daemon, canary), store(daemon)
    images_before = daemon.hyperctl("images", "-q").stdout

    result = daemon.hyperctl("load", "-i", str(archive))

    assert host(daemon, canary) == host_before, "something outside the image store changed"
    if CORPUS[case].outcome == "refused":
        assert result.returncode == 1, result
        (line,) = result.stderr.splitlines()
        assert line.startswith("hyperctl ERROR: ") and CORPUS[case].mention in line, line
        assert store(daemon) == store_before, "a refused archive left something in the store"
        assert daemon.hyperctl("images", "-q").stdout == images_before
        return
    assert result.returncode == 0, result.stderr
    (reference,) = [line.removeprefix("Loaded image: ") for line in result.stdout.splitlines()]
    new = set(store(daemon)) - set(store_before)
    assert new and all(name.startswith(("blobs/", "layers/", "index")) for name in new), new
    if case == "device nodes and a fifo":
        nodes = {
            Path(name).name: entry
            for name, entry in store(daemon).items()
            if name.startswith("layers/") and Path(name).parent.name == "dev"
        }
        assert nodes["mem"][0] == stat.S_IFCHR and nodes["sda"][0] == stat.S_IFBLK
        assert nodes["fifo"][0] == stat.S_IFIFO
        # Only root reaches them: the state root is private.
        assert stat.S_IMODE(os.stat(daemon.state_root).st_mode) == 0o700
    daemon.hyperctl("rmi", reference, check=True)


def test_the_bomb_is_small_and_says_it_is_smaller():
    """The bomb is what it claims to be: a small blob whose gzip trailer understates it."""
    files = gzip_bomb()
    top = json.loads(files["index.json"])["manifests"][0]["digest"]
    layer = json.loads(files[_blob(top)])["layers"][0]
    data = files[_blob(layer["digest"])]
    assert layer["size"] == len(data) < 1 << 20
    assert struct.unpack("<I", data[-4:])[0] == 1024
    over = (100 << 20) + 1  # the default limit: 100 times a blob, blobs count as 1 MiB at least
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as inflated:
        assert len(inflated.read(over)) == over

"""The driver without a network: load, resolve, list, remove, save, and hostile archives."""

from __future__ import annotations

import gzip
import json
import os
import tarfile
from pathlib import Path

import pytest
from hypercontainer.config import Config
from hypercontainer.errors import Conflict, NotFound, UserError
from hypercontainer_plugins.images import build, digests
from hypercontainer_plugins.images.build import Image, Layer
from hypercontainer_plugins.images.driver import OciImages

from tests.support.imagebuild import write_tar

BASE = Layer().dir("bin").file("bin/tool", b"#!/bin/sh\necho tool\n", mode=0o755)
TOP = Layer().file("etc/motd", b"hi\n").whiteout("bin/tool")


def make_driver(state_root: Path, **settings) -> OciImages:
    return OciImages(Config(state_root=state_root).with_table("oci", **settings))


@pytest.fixture
def driver(tmp_path) -> OciImages:
    return make_driver(tmp_path / "state")


def archive(path: Path, images: dict[str, Image]) -> Path:
    build.write_archive(path, [(name, *image.build()) for name, image in images.items()])
    return path


def contents(driver: OciImages) -> dict[str, list[str]]:
    """Everything the store holds, to prove a failure left nothing behind."""
    root = driver.store.root
    return {
        "blobs": sorted(driver.store.blobs.all()),
        "layers": sorted(str(p) for p in (root / "layers").glob("*/*")),
        "tmp": sorted(str(p) for p in (root / "tmp").glob("*")),
        "images": [r.id for r in driver.store.index.images()],
        "refs": [r for r, _, _ in driver.store.index.refs()],
    }


EMPTY = {"blobs": [], "layers": [], "tmp": [], "images": [], "refs": []}


def test_load_then_resolve_by_name_and_id_prefix(driver, tmp_path):
    two = Image([BASE, TOP], cmd=["cat", "/etc/motd"])
    path = archive(tmp_path / "a.tar", {"docker.io/library/two:1": two})
    assert driver.load(path) == ["docker.io/library/two:1"]
    image = driver.resolve("two:1")
    assert image.reference == "docker.io/library/two:1"
    assert image.config.cmd == ["cat", "/etc/motd"]
    root = driver.layers_root()
    bottom, top = (root / layer for layer in image.layers)
    assert (bottom / "bin/tool").read_bytes().startswith(b"#!/bin/sh")
    assert (top / "etc/motd").read_bytes() == b"hi\n"
    assert (top / "bin/tool").lstat().st_rdev == os.makedev(0, 0)  # the whiteout
    hex_id = image.id.split(":")[1]
    for prefix in (hex_id[:12], image.id[:19], hex_id):
        assert driver.resolve(prefix).id == image.id
    with pytest.raises(NotFound):
        driver.resolve("two:2")


def test_layers_shared_between_images_and_listed(driver, tmp_path):
    one = Image([BASE], cmd=["one"])
    two = Image([BASE, TOP])
    driver.load(archive(tmp_path / "a.tar", {"x.io/one:latest": one, "x.io/two:latest": two}))
    first, second = driver.resolve("x.io/one"), driver.resolve("x.io/two")
    assert first.layers[0] == second.layers[0]
    assert len(list((driver.layers_root() / "sha256").iterdir())) == 2
    rows = [(r.repository, r.tag, r.id) for r in driver.list()]
    assert rows == [("x.io/one", "latest", first.id), ("x.io/two", "latest", second.id)]
    assert driver.list()[0].size == len(b"#!/bin/sh\necho tool\n")


def test_remove_untags_deletes_and_collects(driver, tmp_path):
    driver.load(
        archive(
            tmp_path / "a.tar",
            {
                "x.io/one:latest": Image([BASE], cmd=["one"]),
                "x.io/one:alias": Image([BASE], cmd=["one"]),
                "x.io/two:latest": Image([BASE, TOP]),
            },
        )
    )
    two = driver.resolve("x.io/two")
    assert driver.remove("x.io/one:alias") == ["Untagged: x.io/one:alias"]
    one = driver.resolve("x.io/one")
    removed = driver.remove("x.io/one")
    assert removed[:2] == ["Untagged: x.io/one:latest", f"Deleted: {one.id}"]
    assert not driver.store.blobs.has(one.id)
    assert (driver.layers_root() / two.layers[0]).is_dir()  # still used by two
    removed = driver.remove(two.id[7:19])
    assert f"Deleted: {two.id}" in removed and len(removed) == 4  # untag, image, 2 layers
    assert contents(driver) == EMPTY | {"tmp": []}


def test_remove_refused_while_in_use_unless_forced(driver, tmp_path):
    driver.load(archive(tmp_path / "a.tar", {"x.io/one:latest": Image([BASE])}))
    image = driver.resolve("x.io/one")
    with pytest.raises(Conflict, match="used by a container"):
        driver.remove("x.io/one", in_use=[image.id])
    assert driver.resolve("x.io/one").id == image.id
    assert driver.remove("x.io/one", in_use=[image.id], force=True) == ["Untagged: x.io/one:latest"]
    # The container keeps its layers: the image stays, untagged, until removed by id.
    assert driver.resolve(image.id).layers == image.layers
    assert [(r.repository, r.tag) for r in driver.list()] == [("<none>", "<none>")]
    driver.remove(image.id)
    assert contents(driver) == EMPTY


def test_save_then_load_elsewhere_gives_the_same_image(driver, tmp_path):
    driver.load(archive(tmp_path / "a.tar", {"x.io/two:v2": Image([BASE, TOP], cmd=["x"])}))
    original = driver.resolve("x.io/two:v2")
    driver.save(["x.io/two:v2"], tmp_path / "saved.tar")
    other = make_driver(tmp_path / "other")
    assert other.load(tmp_path / "saved.tar") == ["x.io/two:v2"]
    copy = other.resolve("x.io/two:v2")
    assert (copy.id, copy.layers, copy.config) == (original.id, original.layers, original.config)


def test_save_by_id_loads_untagged(driver, tmp_path):
    driver.load(archive(tmp_path / "a.tar", {"x.io/one:latest": Image([BASE])}))
    image_id = driver.resolve("x.io/one").id
    driver.save([image_id[7:15]], tmp_path / "saved.tar")
    other = make_driver(tmp_path / "other")
    assert other.load(tmp_path / "saved.tar") == [image_id]


def test_docker_archive_loads(driver, tmp_path):
    base_tar, top_tar = BASE.tar(), TOP.tar()
    config = build.canonical_json(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["sh"]},
            "rootfs": {
                "type": "layers",
                "diff_ids": [digests.of_bytes(base_tar), digests.of_bytes(top_tar)],
            },
        }
    )
    manifest = [
        {
            "Config": "cfg.json",
            "RepoTags": ["old/app:1"],
            "Layers": ["l1/layer.tar", "l2/layer.tar"],
        }
    ]
    path = tmp_path / "docker.tar"
    write_tar(
        path,
        {
            "manifest.json": json.dumps(manifest).encode(),
            "cfg.json": config,
            "l1/layer.tar": base_tar,
            "l2/layer.tar": top_tar,
        },
    )
    assert driver.load(path) == ["docker.io/old/app:1"]
    image = driver.resolve("old/app:1")
    assert image.id == digests.of_bytes(config) and len(image.layers) == 2


def test_compressed_archive_loads(driver, tmp_path):
    plain = archive(tmp_path / "a.tar", {"x.io/one:latest": Image([BASE])})
    (tmp_path / "a.tar.gz").write_bytes(gzip.compress(plain.read_bytes()))
    assert driver.load(tmp_path / "a.tar.gz") == ["x.io/one:latest"]
    assert contents(driver)["tmp"] == []


def tampered(path: Path, member_prefix: str, change) -> Path:
    """Rewrite the archive with one member's bytes changed."""
    with tarfile.open(path) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isreg()}
    for name in files:
        if name.startswith(member_prefix):
            files[name] = change(files[name])
    write_tar(path, files)
    return path


def blob_member(path: Path, kind: str) -> str:
    """The archive member holding the image's "manifest", "config" or top "layer"."""
    files = read_tar(path)
    digest = json.loads(files["index.json"])["manifests"][0]["digest"]
    if kind != "manifest":
        manifest = json.loads(files["blobs/" + digest.replace(":", "/")])
        described = manifest["config"] if kind == "config" else manifest["layers"][-1]
        digest = described["digest"]
    return "blobs/" + digest.replace(":", "/")


def read_tar(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isreg()}


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


def without(path: Path, member: str) -> None:
    write_tar(path, {k: v for k, v in read_tar(path).items() if k != member})


HOSTILE = {
    "layer blob tampered": lambda p: tampered(p, blob_member(p, "layer"), flip_last_byte),
    "config blob tampered": lambda p: tampered(p, blob_member(p, "config"), flip_last_byte),
    "manifest does not match its digest": lambda p: tampered(
        p,
        blob_member(p, "manifest"),
        lambda d: d.replace(b'"schemaVersion":2', b'"schemaVersion":3'),
    ),
    "layer blob missing": lambda p: without(p, blob_member(p, "layer")),
    "not an archive": lambda p: p.write_bytes(os.urandom(4096)),
    "truncated gzip archive": lambda p: p.write_bytes(truncated(gzip.compress(p.read_bytes()))),
    "neither OCI nor docker": lambda p: write_tar(p, {"hello.txt": b"hi"}),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_bad_archives_refused_without_trace(driver, tmp_path, case):
    path = archive(tmp_path / "a.tar", {"x.io/two:latest": Image([BASE, TOP])})
    HOSTILE[case](path)
    with pytest.raises(UserError) as error:
        driver.load(path)
    assert "\n" not in str(error.value)
    assert contents(driver) == EMPTY


def test_hostile_layer_in_archive_leaves_no_trace(driver, tmp_path):
    evil = Layer().symlink("etc", "/etc").file("etc/evil", b"pwned")
    path = archive(tmp_path / "a.tar", {"x.io/evil:latest": Image([BASE, evil])})
    with pytest.raises(UserError, match="refusing to write through it"):
        driver.load(path)
    assert contents(driver) == EMPTY
    assert not Path("/etc/evil").exists()


def test_failed_load_keeps_what_other_images_use(driver, tmp_path):
    driver.load(archive(tmp_path / "good.tar", {"x.io/one:latest": Image([BASE])}))
    before = contents(driver)
    evil = Layer().file("../x", b"")
    with pytest.raises(UserError):
        driver.load(archive(tmp_path / "bad.tar", {"x.io/evil:latest": Image([BASE, evil])}))
    assert contents(driver) == before


def test_bomb_refused_with_configured_limit(tmp_path):
    driver = make_driver(tmp_path / "state", max_layer_size=2**20)
    bomb = Image([Layer().file("zeros", bytes(8 * 2**20))])
    with pytest.raises(UserError, match="decompression bomb"):
        driver.load(archive(tmp_path / "a.tar", {"x.io/bomb:latest": bomb}))
    assert contents(driver) == EMPTY


def test_multi_platform_archive_loads_configured_platform(tmp_path):
    amd = Image([Layer().file("arch", b"amd64")], architecture="amd64")
    arm = Image([Layer().file("arch", b"arm64")], architecture="arm64", variant="v8")
    top, blobs = build.multi_platform([amd, arm])
    build.write_archive(tmp_path / "m.tar", [("x.io/multi:latest", top, blobs)])
    for platform, expected in (("linux/amd64", b"amd64"), ("linux/arm64", b"arm64")):
        driver = make_driver(tmp_path / platform.replace("/", "-"), platform=platform)
        driver.load(tmp_path / "m.tar")
        (layer,) = driver.resolve("x.io/multi").layers
        assert (driver.layers_root() / layer / "arch").read_bytes() == expected


def test_resolve_refuses_damaged_image(driver, tmp_path):
    driver.load(archive(tmp_path / "a.tar", {"x.io/one:latest": Image([BASE])}))
    image = driver.resolve("x.io/one")
    os.rename(driver.layers_root() / image.layers[0], tmp_path / "moved")
    with pytest.raises(UserError, match="incomplete"):
        driver.resolve("x.io/one")


def test_ambiguous_and_invalid_lookups(driver, tmp_path):
    with pytest.raises(NotFound, match="not found locally"):
        driver.resolve("busybox")
    with pytest.raises(UserError, match="invalid image reference"):
        driver.resolve("Bad Name")
    with pytest.raises(UserError, match="at least one"):
        driver.save([], tmp_path / "x.tar")

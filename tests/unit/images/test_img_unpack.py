"""Layer unpacking: overlayfs whiteouts, metadata kept, and hostile layers refused cleanly."""

from __future__ import annotations

import gzip
import os
import stat
import tarfile
from pathlib import Path

import pytest
from hypercontainer.errors import UserError
from hypercontainer_plugins.images import digests
from hypercontainer_plugins.images.build import Layer

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def entry(name: str, kind: bytes = tarfile.REGTYPE, **fields) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = fields.pop("mode", 0o644)
    for key, value in fields.items():
        setattr(info, key, value)
    return info


# -- what a good layer becomes --------------------------------------------------


@root_only
def test_files_dirs_links_keep_modes_owners_and_times(unpack_layer, layer_dir):
    layer = (
        Layer()
        .dir("etc", 0o755)
        .file("etc/shadow", b"secret\n", mode=0o640, uid=0, gid=42)
        .dir("home/alice", 0o700, uid=1000, gid=1000)
        .file("home/alice/notes", b"hi", mode=0o600, uid=1000, gid=1000)
        .file("bin/su", b"#!/bin/sh\n", mode=0o4755)
        .symlink("bin/sh", "/bin/busybox")
        .hardlink("bin/su2", "bin/su")
        .raw(entry("run/fifo", tarfile.FIFOTYPE, mode=0o620))
        .raw(entry("stamp", mtime=1_000_000_000), b"x")
    )
    result = unpack_layer(layer)

    shadow = (layer_dir / "etc/shadow").stat()
    assert (stat.S_IMODE(shadow.st_mode), shadow.st_uid, shadow.st_gid) == (0o640, 0, 42)
    alice = (layer_dir / "home/alice").stat()
    assert (stat.S_IMODE(alice.st_mode), alice.st_uid) == (0o700, 1000)
    assert (layer_dir / "home/alice/notes").stat().st_uid == 1000
    assert stat.S_IMODE((layer_dir / "bin/su").stat().st_mode) == 0o4755
    assert os.readlink(layer_dir / "bin/sh") == "/bin/busybox"
    assert (layer_dir / "bin/su2").stat().st_ino == (layer_dir / "bin/su").stat().st_ino
    assert stat.S_ISFIFO((layer_dir / "run/fifo").lstat().st_mode)
    assert (layer_dir / "stamp").stat().st_mtime == 1_000_000_000
    assert result.size == len(b"secret\n") + 2 + len(b"#!/bin/sh\n") + 1
    assert result.diff_id == digests.of_bytes(layer.tar())


def test_whiteout_becomes_overlay_char_device(unpack_layer, layer_dir):
    unpack_layer(Layer().dir("bin").whiteout("bin/vi").whiteout("etc"))
    for hidden in ("bin/vi", "etc"):
        info = (layer_dir / hidden).lstat()
        assert stat.S_ISCHR(info.st_mode) and info.st_rdev == os.makedev(0, 0)
    assert not (layer_dir / "bin/.wh.vi").exists()


@root_only
def test_opaque_directory_gets_trusted_xattr_as_root(unpack_layer, layer_dir):
    unpack_layer(Layer().opaque("home").file("home/new", b"n"), privileged=True)
    assert os.getxattr(layer_dir / "home", "trusted.overlay.opaque") == b"y"
    assert sorted(os.listdir(layer_dir / "home")) == ["new"]


def test_opaque_directories_are_also_listed_beside_the_layer(unpack_layer, layer_dir):
    from hypercontainer_plugins.images.unpack import read_opaque_list

    unpack_layer(Layer().opaque("home").dir("usr/sbin").opaque("usr/sbin"), privileged=True)
    assert read_opaque_list(layer_dir) == ["home", "usr/sbin"]
    assert not (layer_dir / ".opaque.json").exists()  # nothing added inside the rootfs


def test_opaque_directory_gets_user_xattr_unprivileged(unpack_layer, layer_dir):
    unpack_layer(Layer().dir("home").opaque("home"), privileged=False)
    assert os.getxattr(layer_dir / "home", "user.overlay.opaque") == b"y"


def test_entry_added_by_same_layer_beats_its_whiteout(unpack_layer, layer_dir):
    unpack_layer(Layer().file("keep", b"mine").whiteout("keep"))
    assert (layer_dir / "keep").read_bytes() == b"mine"


def test_later_entry_replaces_earlier_one(unpack_layer, layer_dir):
    layer = Layer().dir("x").file("x/inner", b"1").file("x", b"file now").symlink("y", "x")
    layer.file("y", b"plain")
    unpack_layer(layer)
    assert (layer_dir / "x").read_bytes() == b"file now"
    assert (layer_dir / "y").read_bytes() == b"plain" and not (layer_dir / "y").is_symlink()


@pytest.mark.parametrize("compression", ["gzip", "zstd", ""])
def test_every_compression_gives_the_same_layer(unpack_layer, layer_dir, compression):
    layer = Layer().dir("d").file("d/f", b"content" * 1000)
    result = unpack_layer(layer, compression=compression)
    assert (layer_dir / "d/f").read_bytes() == b"content" * 1000
    assert result.diff_id == digests.of_bytes(layer.tar())


def test_layer_root_is_world_readable(unpack_layer, layer_dir):
    unpack_layer(Layer().file("f", b""))
    assert stat.S_IMODE(layer_dir.stat().st_mode) == 0o755


# -- hostile layers -------------------------------------------------------------


def gnu_long_name(length: int) -> Layer:
    """A layer whose GNU tar long-name record is `length` bytes (read into memory whole)."""

    class GnuLayer(Layer):
        def tar(self) -> bytes:
            import io

            out = io.BytesIO()
            with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as archive:
                archive.addfile(entry("n" * length), io.BytesIO(b""))
            return out.getvalue()

    return GnuLayer()


@pytest.fixture
def outside(tmp_path) -> Path:
    """A host directory a hostile layer would love to write to."""
    place = tmp_path / "outside"
    place.mkdir()
    (place / "secret").write_text("original")
    return place


def hostile_layers(outside: Path) -> dict[str, tuple[Layer, str]]:
    """name -> (layer, what the error must mention)."""
    return {
        "dotdot": (Layer().file("../outside/evil", b"x"), "'..'"),
        "nested dotdot": (Layer().file("a/../../outside/evil", b"x"), "'..'"),
        "absolute path": (Layer().file(str(outside / "evil"), b"x"), "absolute"),
        "write through absolute symlink": (
            Layer().symlink("link", str(outside)).file("link/evil", b"x"),
            "symlink",
        ),
        "write through relative symlink": (
            Layer().symlink("link", "../outside").file("link/evil", b"x"),
            "symlink",
        ),
        "directory through symlink": (Layer().symlink("d", str(outside)).dir("d/sub"), "symlink"),
        "hard link to host file": (
            Layer().hardlink("h", "/etc/passwd"),
            "hard link 'h' to '/etc/passwd' has an absolute",
        ),
        "hard link with dotdot": (Layer().hardlink("h", "../outside/secret"), "'..'"),
        "hard link through symlink": (
            Layer().symlink("s", str(outside)).hardlink("h", "s/secret"),
            "symlink",
        ),
        "hard link to missing file": (Layer().hardlink("h", "nothing"), "missing"),
        "hard link to a directory": (Layer().dir("d").hardlink("h", "d"), "directory"),
        "hard link to the root": (Layer().hardlink("h", "./"), "directory"),
        "whiteout of dotdot": (Layer().file("a/.wh..", b""), "whiteout"),
        "whiteout of dotdot at top": (Layer().file(".wh..", b""), "whiteout"),
        "whiteout through symlink": (
            Layer().symlink("s", str(outside)).file("s/.wh.secret", b""),
            "symlink",
        ),
        "opaque through symlink": (Layer().symlink("s", str(outside)).opaque("s"), "symlink"),
        "root replaced by a file": (Layer().raw(entry("."), b"x"), "root"),
        "overlong name": (Layer().file("a" * 300, b"x"), "too long"),
        "unknown entry type": (Layer().raw(entry("odd", b"Z")), "unsupported type"),
        "huge PAX header": (
            Layer().raw(entry("x", pax_headers={"comment": "c" * (2 << 20)}), b""),
            "too large",
        ),
        "huge GNU long name": (gnu_long_name(2 << 20), "too large"),
    }


@pytest.mark.parametrize("case", list(hostile_layers(Path("/x"))))
def test_hostile_layer_refused_without_trace(case, unpack_layer, outside, layer_dir, work_dir):
    layer, mention = hostile_layers(outside)[case]
    with pytest.raises(UserError) as error:
        unpack_layer(layer)
    message = str(error.value)
    assert mention in message and "\n" not in message
    assert sorted(os.listdir(outside)) == ["secret"]
    assert (outside / "secret").read_text() == "original"
    assert not layer_dir.exists()
    assert list(work_dir.iterdir()) == []


def test_hard_link_to_symlink_links_the_symlink_itself(unpack_layer, layer_dir):
    unpack_layer(Layer().symlink("s", "/etc/passwd").hardlink("h", "s"))
    assert os.readlink(layer_dir / "h") == "/etc/passwd"
    assert (layer_dir / "h").lstat().st_ino != os.stat("/etc/passwd").st_ino


def test_device_node_refused_when_unprivileged(unpack_layer, layer_dir):
    device = entry("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3)
    with pytest.raises(UserError, match="device node .* needs root"):
        unpack_layer(Layer().raw(device), privileged=False)
    assert not layer_dir.exists()


@root_only
def test_device_node_kept_as_root(unpack_layer, layer_dir):
    unpack_layer(Layer().raw(entry("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3)))
    assert (layer_dir / "dev/null").lstat().st_rdev == os.makedev(1, 3)


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_decompression_bomb_stopped_at_the_limit(unpack_layer, layer_dir, work_dir, compression):
    bomb = Layer().file("zeros", bytes(32 * 2**20))
    with pytest.raises(UserError, match="^layer test: decompresses to more than 4194304 bytes"):
        unpack_layer(bomb, compression=compression, limit=4 * 2**20)
    assert not layer_dir.exists() and list(work_dir.iterdir()) == []


def test_diff_id_mismatch_refused(unpack_layer, layer_dir):
    wrong = digests.of_bytes(b"something else")
    with pytest.raises(UserError, match="does not match"):
        unpack_layer(Layer().file("f", b"x"), expected_diff_id=wrong)
    assert not layer_dir.exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_blob_refused(tmp_path, layer_dir, work_dir, damage):
    from hypercontainer_plugins.images.unpack import unpack

    data = gzip.compress(Layer().file("f", os.urandom(100_000)).tar())
    blob = tmp_path / "blob"
    blob.write_bytes(data[: len(data) // 2] if damage == "truncated" else os.urandom(5000))
    with pytest.raises(UserError) as error:
        unpack(blob, layer_dir, work_dir, 2**30, "layer bad")
    assert str(error.value).startswith("layer bad: ") and "\n" not in str(error.value)
    assert not layer_dir.exists() and list(work_dir.iterdir()) == []

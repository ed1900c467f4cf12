"""The initrd archive writer, read back with GNU cpio."""

from __future__ import annotations

import gzip
import subprocess
from pathlib import Path

import pytest
from hypercontainer.guest import cpio


def listing(archive: Path, verbose: bool = True) -> list[str]:
    done = subprocess.run(
        ["cpio", "-itv" if verbose else "-it", "--quiet"],
        input=gzip.decompress(archive.read_bytes()),
        capture_output=True,
        check=True,
    )
    return done.stdout.decode().splitlines()


def test_files_links_directories_and_devices_round_trip(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "bin").mkdir(parents=True)
    (tree / "dev").mkdir()
    (tree / "bin/busybox").write_bytes(b"\x7fELF" + b"x" * 13)  # odd size: padding matters
    (tree / "bin/busybox").chmod(0o755)
    (tree / "bin/sh").symlink_to("busybox")
    archive = tmp_path / "initrd.img"
    cpio.write(tree, archive, {"dev/console": (5, 1)})

    lines = listing(archive)
    by_name = dict(zip(listing(archive, verbose=False), lines, strict=True))
    assert list(by_name) == ["bin", "dev", "bin/busybox", "bin/sh", "dev/console"]
    assert by_name["bin/busybox"].startswith("-rwxr-xr-x") and " 17 " in by_name["bin/busybox"]
    assert by_name["bin/sh"].startswith("l") and by_name["bin/sh"].endswith("bin/sh -> busybox")
    assert by_name["dev/console"].startswith("crw-------") and "5,   1" in by_name["dev/console"]
    assert all(line.split()[2:4] == ["root", "root"] for line in lines)

    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(
        ["cpio", "-id", "--quiet", "bin/busybox"],
        cwd=out,
        check=True,
        input=gzip.decompress(archive.read_bytes()),
    )
    assert (out / "bin/busybox").read_bytes() == (tree / "bin/busybox").read_bytes()


def test_the_same_tree_gives_the_same_bytes(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a").write_text("a")
    first, second = tmp_path / "1.img", tmp_path / "2.img"
    cpio.write(tree, first, {})
    (tree / "a").touch()  # a newer time changes nothing
    cpio.write(tree, second, {})
    assert first.read_bytes() == second.read_bytes()


def test_sockets_and_fifos_are_refused(tmp_path: Path) -> None:
    import os

    tree = tmp_path / "tree"
    tree.mkdir()
    os.mkfifo(tree / "fifo")
    with pytest.raises(ValueError, match="only files, directories and symlinks"):
        cpio.write(tree, tmp_path / "x.img", {})

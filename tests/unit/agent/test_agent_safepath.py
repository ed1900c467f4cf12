"""Files inside a root filesystem: links are followed inside it, never out of it."""

from __future__ import annotations

import os

import pytest
from hypercontainer.guest.agent import safepath
from hypercontainer.guest.agent.safepath import PathError


@pytest.fixture
def trees(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "etc").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret").write_text("host secret")
    return root, outside


@pytest.mark.parametrize("link", ["/", "../../..", "/../../.."])
def test_links_out_of_the_root_stay_inside(trees, link):
    root, outside = trees
    (root / "escape").symlink_to(link + str(outside))
    safepath.write_file(str(root), "/escape/new", b"x")
    assert sorted(os.listdir(outside)) == ["secret"]
    assert (root / outside.relative_to("/") / "new").read_bytes() == b"x"
    with pytest.raises(PathError, match="No such file"):
        safepath.read_file(str(root), "/escape/secret", 0, 100)


def test_dotdot_stops_at_the_root(trees):
    root, outside = trees
    safepath.write_file(str(root), "/../../../etc/hosts", b"127.0.0.1 x\n")
    assert (root / "etc" / "hosts").read_bytes() == b"127.0.0.1 x\n"


def test_final_link_is_followed_inside_the_root(trees):
    root, outside = trees
    (root / "etc" / "resolv.conf").symlink_to("/run/resolv.conf")
    safepath.write_file(str(root), "/etc/resolv.conf", b"nameserver 1.1.1.1\n")
    assert (root / "run" / "resolv.conf").read_bytes() == b"nameserver 1.1.1.1\n"
    assert (root / "etc" / "resolv.conf").is_symlink()


def test_link_loop_is_an_error(trees):
    root, _ = trees
    (root / "a").symlink_to("b")
    (root / "b").symlink_to("a")
    with pytest.raises(PathError, match="too many levels of symbolic links"):
        safepath.write_file(str(root), "/a/x", b"")


def test_mode_owner_append_and_chunked_read(trees):
    root, _ = trees
    safepath.write_file(str(root), "/d/e/f", b"hello ", mode=0o600, owner=(1000, 50))
    safepath.write_file(str(root), "/d/e/f", b"world", append=True)
    info = os.stat(root / "d" / "e" / "f")
    assert (info.st_mode & 0o7777, info.st_uid, info.st_gid) == (0o600, 1000, 50)
    assert safepath.read_file(str(root), "/d/e/f", 0, 4) == (b"hell", False)
    assert safepath.read_file(str(root), "/d/e/f", 4, 100) == (b"o world", True)


def test_only_regular_files(trees):
    root, _ = trees
    os.mkfifo(root / "fifo")
    with pytest.raises(PathError, match="^/fifo: not a regular file$"):
        safepath.read_file(str(root), "/fifo", 0, 10)
    with pytest.raises(PathError, match="is a directory"):
        safepath.write_file(str(root), "/", b"")
    with pytest.raises(PathError, match="^/etc: "):
        safepath.read_file(str(root), "/etc", 0, 10)


def test_make_dirs_inside_the_root(trees):
    root, outside = trees
    (root / "up").symlink_to("/..")
    safepath.make_dirs(str(root), "/up/work/dir")
    assert (root / "work" / "dir").is_dir()
    safepath.make_dirs(str(root), "/up" + str(outside) + "/made")
    assert sorted(os.listdir(outside)) == ["secret"]
    (root / "file").write_text("")
    with pytest.raises(PathError, match="Not a directory"):
        safepath.make_dirs(str(root), "/file")

"""Share tags, ext4 share images and the virtiofsd command lines."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypercontainer.drivers import Share
from hypercontainer.errors import UserError
from hypercontainer_plugins.hypervisors.cloud_hypervisor import ext4_image
from hypercontainer_plugins.hypervisors.cloud_hypervisor.shares import check_tags
from hypercontainer_plugins.hypervisors.cloud_hypervisor.virtiofs import (
    Virtiofsd,
    find_virtiofsd,
)


def test_tags_must_be_short_plain_and_unique():
    check_tags([Share("hc_layers", Path("/a")), Share("hc_vol_0", Path("/b"))])
    for bad in ("", "../x", "a b", "x" * 21, ".hidden"):
        with pytest.raises(UserError, match="share tag"):
            check_tags([Share(bad, Path("/a"))])
    with pytest.raises(UserError, match="used twice"):
        check_tags([Share("t", Path("/a")), Share("t", Path("/b"))])


def test_an_image_holds_a_copy_of_the_tree(tmp_path):
    tree = tmp_path / "tree"
    (tree / "dir").mkdir(parents=True)
    for n in range(300):  # many small files: inodes must not run out
        (tree / "dir" / f"f{n}").write_text(str(n))
    (tree / "big").write_bytes(b"x" * (3 << 20))
    (tree / "escape").symlink_to("/etc/shadow")
    image = tmp_path / "share.img"
    ext4_image.build(Share("hc_vol_0", tree), image)
    listing = subprocess.run(
        ["debugfs", "-R", "ls -l /", str(image)], capture_output=True, text=True, check=True
    ).stdout
    assert "escape" in listing and "big" in listing
    link = subprocess.run(
        ["debugfs", "-R", "stat /escape", str(image)], capture_output=True, text=True, check=True
    ).stdout
    assert 'Fast link dest: "/etc/shadow"' in link  # copied as a link, never followed
    assert ext4_image.disk_config(Share("hc_vol_0", tree), image)["serial"] == "hc_vol_0"


def test_an_image_of_a_missing_directory_is_an_error(tmp_path):
    with pytest.raises(Exception, match="is not a directory"):
        ext4_image.build(Share("t", tmp_path / "absent"), tmp_path / "t.img")
    assert not (tmp_path / "t.img").exists()


def test_both_virtiofsd_flavours_get_their_own_options():
    share = Share("hc_layers", Path("/layers"), readonly=True)
    rust = Virtiofsd(Path("/usr/libexec/virtiofsd"), rust=True, has_readonly=True)
    assert rust.argv(5, share) == [
        "/usr/libexec/virtiofsd",
        "--fd=5",
        "--shared-dir=/layers",
        "--cache=auto",
        "--sandbox=namespace",
        "--readonly",
    ]
    qemu = Virtiofsd(Path("/usr/lib/qemu/virtiofsd"), rust=False, has_readonly=False)
    assert qemu.argv(5, share) == [
        "/usr/lib/qemu/virtiofsd",
        "--fd=5",
        "-o",
        "source=/layers",
        "-o",
        "cache=auto",
    ]


def test_virtiofsd_is_found_by_name_or_path(tmp_path):
    assert find_virtiofsd(str(tmp_path / "absent")) is None
    assert find_virtiofsd("no-such-virtiofsd") is None
    found = find_virtiofsd("virtiofsd")
    if found is not None:  # on Debian: QEMU's, off PATH
        assert Virtiofsd.probe(found).binary == found

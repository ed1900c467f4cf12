"""The per-pod share: host directories and files bound below it, read-only where asked,
released without ever deleting through a mount, and a guest's symlinks refused."""

from __future__ import annotations

import os

import pytest
from hypercontainer import hostpaths, mounts
from hypercontainer.errors import UserError
from hypercontainer.podshare import POD_SHARE_TAG, PodShare, ShareError

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root"),
]


@pytest.fixture
def host(tmp_path):
    rootfs = tmp_path / "snapshot"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "bin" / "sh").write_text("shell")
    data = tmp_path / "data"
    data.mkdir()
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    share = PodShare(tmp_path / "pod" / "share", protected=[tmp_path / "state"])
    yield share, rootfs, data, hosts
    mounts.unmount_all(str(tmp_path))


def test_the_share_is_a_read_write_export_that_has_mounts_below(host) -> None:
    share, *_ = host
    exported = share.share()
    assert (exported.tag, exported.readonly, exported.mounts_below) == (POD_SHARE_TAG, False, True)
    assert exported.host_path.is_dir()


def test_rootfs_and_binds_appear_below_the_share_and_go_on_detach(host) -> None:
    share, rootfs, data, hosts = host
    share.share()
    share.attach("c1", str(rootfs), [(str(data), False), (str(hosts), True)])
    share.attach("c1", str(rootfs), [(str(data), False), (str(hosts), True)])  # again: no-op
    below = share.root / "c1"
    assert (below / "rootfs" / "bin" / "sh").read_text() == "shell"
    (below / "binds" / "0" / "new").write_text("x")
    assert (data / "new").read_text() == "x"
    assert (below / "binds" / "1").read_text().startswith("127.0.0.1")
    with pytest.raises(OSError):  # read-only on the host side, whatever the guest asks
        (below / "binds" / "1").write_text("evil")
    assert len(mounts.mounted_under(str(below))) == 3
    share.detach("c1")
    assert not below.exists() and mounts.mounted_under(str(share.root)) == []
    assert (rootfs / "bin" / "sh").read_text() == "shell" and (data / "new").exists()


def test_removing_the_share_unmounts_first_and_deletes_nothing_of_the_host(host) -> None:
    share, rootfs, data, _ = host
    share.share()
    share.attach("c1", str(rootfs), [(str(data), False)])
    share.attach("c2", None, [(str(data), True)])
    share.remove()
    assert not share.root.exists()
    assert (rootfs / "bin" / "sh").exists() and data.is_dir()


def test_a_symlink_planted_in_the_share_is_not_followed(host, tmp_path) -> None:
    share, rootfs, data, _ = host
    share.share()
    victim = tmp_path / "victim"
    victim.mkdir()
    (share.root / "c1").symlink_to(victim)  # what a guest could do before c1 starts
    with pytest.raises(ShareError, match="not a directory hyperd made"):
        share.attach("c1", str(rootfs), [])
    assert mounts.mounted_under(str(victim)) == []


def test_a_bind_source_is_checked_again_when_it_is_mounted(host, tmp_path) -> None:
    share, rootfs, *_ = host
    share.share()
    (tmp_path / "state").mkdir()
    sneaky = tmp_path / "link"
    sneaky.symlink_to(tmp_path / "state")  # changed to point at hyperd's state since create
    with pytest.raises(UserError, match="hyperd's own files"):
        share.attach("c1", None, [(str(sneaky), False)])
    assert mounts.mounted_under(str(share.root)) == []


@pytest.mark.parametrize(
    "path, reason",
    [
        ("relative/dir", "not an absolute host path"),
        ("/", "root directory"),
        ("/proc/cpuinfo", "host's /proc"),
        ("/sys/kernel", "host's /sys"),
        ("/dev/sda", "host's /dev"),
        ("/etc/hypercontainer/config.toml", "hyperd's own files"),
        ("/nonexistent-shim-test", "does not exist"),
    ],
)
def test_host_paths_a_container_may_not_get(path: str, reason: str) -> None:
    with pytest.raises(UserError, match=reason):
        hostpaths.check(path, "bind source", protected=[])


def test_hyperd_s_state_and_what_holds_it_are_refused(tmp_path) -> None:
    state = tmp_path / "var" / "lib" / "hc"
    state.mkdir(parents=True)
    for path in (state, state / "pods", tmp_path / "var"):
        with pytest.raises(UserError, match="hyperd's own files"):
            hostpaths.check(str(path), "rootfs", protected=[state])
    allowed = tmp_path / "snapshot"
    allowed.mkdir()
    assert hostpaths.check(str(allowed), "rootfs", protected=[state]) == str(allowed)

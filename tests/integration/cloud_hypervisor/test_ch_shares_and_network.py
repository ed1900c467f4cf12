"""Shares and the tap network, with the real host-side pieces and the stand-in VMM.

virtio-fs shares run a real virtiofsd (Debian ships QEMU's as
/usr/lib/qemu/virtiofsd) which the stand-in must reach over vhost-user; disk
shares are real ext4 images made by mkfs.ext4, read back with debugfs; the tap
is a real tap device in a network namespace the test creates.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from hypercontainer.drivers import Cap, NetworkAttachment, Share
from hypercontainer.errors import DriverError, UserError
from hypercontainer_plugins.hypervisors.cloud_hypervisor import CloudHypervisor
from hypercontainer_plugins.hypervisors.cloud_hypervisor.process import Process
from hypercontainer_plugins.hypervisors.cloud_hypervisor.virtiofs import find_virtiofsd

VIRTIOFSD = find_virtiofsd("virtiofsd")
root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
needs_virtiofsd = pytest.mark.skipif(VIRTIOFSD is None, reason="no virtiofsd installed")


def debugfs_cat(image, path: str) -> str:
    result = subprocess.run(
        ["debugfs", "-R", f"cat {path}", str(image)], capture_output=True, text=True, check=True
    )
    return result.stdout


def image_label(image) -> str:
    return subprocess.run(
        ["e2label", str(image)], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def layers(workdir):
    tree = workdir / "layers"
    (tree / "sha256-abc" / "etc").mkdir(parents=True)
    (tree / "sha256-abc" / "etc" / "hostname").write_text("from-the-host\n")
    (tree / "sha256-abc" / "link").symlink_to("/etc/passwd")
    return tree


def test_without_virtiofsd_shares_are_ext4_images(
    make_binary, make_config, make_spec, journal, layers
):
    driver = CloudHypervisor(make_config(make_binary(), virtiofsd="/nonexistent/virtiofsd"))
    assert Cap.SHARE_VIRTIOFS not in driver.capabilities
    spec = make_spec(shares=[Share("hc_layers", layers, readonly=True)])
    handle = driver.start(spec)

    (disk,) = journal.body("/vm.create")["disks"]
    assert disk == {
        "path": str(spec.run_dir / "share-hc_layers.img"),
        "readonly": True,
        "id": "disk-hc_layers",
        "serial": "hc_layers",
    }
    assert "fs" not in journal.body("/vm.create")
    assert debugfs_cat(disk["path"], "/sha256-abc/etc/hostname") == "from-the-host\n"
    assert image_label(disk["path"]) == "hc_layers"

    # A container created after boot: its layers arrive as a hot-added disk.
    (layers / "sha256-def").mkdir()
    (layers / "sha256-def" / "new").write_text("pulled later\n")
    driver.add_share(handle, Share("hc_layers2", layers, readonly=True))
    added = journal.body("/vm.add-disk")
    assert added["serial"] == "hc_layers2" and added["readonly"] is True
    assert journal.entries()[-1]["status"] == 200  # hot-plugged into the running VM
    assert debugfs_cat(added["path"], "/sha256-def/new") == "pulled later\n"

    driver.stop(handle, timeout=0.1)
    driver.cleanup(handle)
    assert list(spec.run_dir.iterdir()) == []


def test_without_virtiofsd_a_writable_share_is_refused(
    make_binary, make_config, make_spec, journal, workdir
):
    driver = CloudHypervisor(make_config(make_binary()))
    spec = make_spec(shares=[Share("hc_vol_0", workdir, readonly=False)])
    with pytest.raises(UserError, match="writable share needs virtio-fs"):
        driver.start(spec)
    assert journal.entries() == []


@pytest.mark.parametrize("tag", ["../escape", "a/b", "", "x" * 21, "-dash"])
def test_hostile_share_tags_are_refused(make_binary, make_config, make_spec, journal, workdir, tag):
    driver = CloudHypervisor(make_config(make_binary()))
    spec = make_spec(shares=[Share(tag, workdir)])
    with pytest.raises(UserError, match="share tag"):
        driver.start(spec)
    assert not spec.run_dir.exists()
    assert journal.entries() == []


@root
@needs_virtiofsd
@pytest.mark.root
def test_with_virtiofsd_shares_are_virtio_fs(
    make_binary, make_config, make_spec, journal, layers, workdir
):
    driver = CloudHypervisor(make_config(make_binary(), virtiofsd="virtiofsd"))
    assert Cap.SHARE_VIRTIOFS in driver.capabilities
    volume = workdir / "volume"
    volume.mkdir()
    spec = make_spec(shares=[Share("hc_layers", layers), Share("hc_vol_0", volume, False)])
    handle = driver.start(spec)  # the stand-in speaks vhost-user to each virtiofsd at boot

    config = journal.body("/vm.create")
    assert config["memory"]["shared"] is True  # vhost-user needs shared guest memory
    assert [(fs["tag"], fs["socket"]) for fs in config["fs"]] == [
        ("hc_layers", str(spec.run_dir / "fs-hc_layers.sock")),
        ("hc_vol_0", str(spec.run_dir / "fs-hc_vol_0.sock")),
    ]
    assert "disks" not in config
    daemons = sorted(spec.run_dir.glob("virtiofsd-*.pid"))
    assert len(daemons) == 2

    driver.add_share(handle, Share("hc_vol_1", volume, False))
    assert journal.body("/vm.add-fs")["tag"] == "hc_vol_1"
    assert journal.entries()[-1]["status"] == 200

    daemons = [Process.from_record(json.loads(p.read_text())) for p in daemons]
    assert all(daemon.alive() for daemon in daemons)
    driver.stop(handle, timeout=0.1)
    driver.cleanup(handle)
    assert list(spec.run_dir.iterdir()) == []
    assert not any(daemon.alive() for daemon in daemons)


@root
@pytest.mark.root
def test_the_pods_tap_is_attached(make_binary, make_config, make_spec, journal, netns_with_tap):
    netns, tap = netns_with_tap
    # The VMM runs inside the namespace that holds the tap, as it would on the host.
    binary = make_binary(prefix=f"ip netns exec {netns}")
    driver = CloudHypervisor(make_config(binary))
    attachment = NetworkAttachment(
        kind="tap",
        tap=tap,
        mac="52:54:00:aa:bb:01",
        address="192.168.123.2/24",
        gateway="192.168.123.1",
    )
    handle = driver.start(make_spec(network=attachment))
    assert journal.body("/vm.create")["net"] == [
        {"tap": tap, "id": "net0", "mac": "52:54:00:aa:bb:01"}
    ]
    driver.stop(handle, timeout=0.1)
    driver.cleanup(handle)


@root
@pytest.mark.root
def test_a_missing_tap_fails_the_boot_cleanly(
    make_binary, make_config, make_spec, journal, netns_with_tap
):
    netns, _ = netns_with_tap
    driver = CloudHypervisor(make_config(make_binary(prefix=f"ip netns exec {netns}")))
    spec = make_spec(network=NetworkAttachment(kind="tap", tap="tap-absent"))
    with pytest.raises(DriverError, match="tap tap-absent does not exist"):
        driver.start(spec)
    assert list(spec.run_dir.iterdir()) == []

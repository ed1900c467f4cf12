"""A pod's clone of a template snapshot: the template's VmConfig with the pod's back-ends,
the template's state and memory linked, never copied or written."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from hypercontainer.errors import DriverError
from hypercontainer_plugins.hypervisors.cloud_hypervisor import snapshot

# As Cloud Hypervisor writes it: its whole VmConfig, fields we never sent included.
TEMPLATE = {
    "payload": {"kernel": "/k", "initramfs": "/i", "cmdline": "quiet"},
    "cpus": {"boot_vcpus": 1, "max_vcpus": 1, "kvm_hyperv": False},
    "memory": {"size": 128 << 20, "shared": True, "mergeable": False},
    "serial": {"mode": "File", "file": "/t/console.log", "iommu": False},
    "console": {"mode": "File", "file": "/t/run/hvc0.log", "iommu": False},
    "vsock": {"cid": 3, "socket": "/t/run/vsock.sock", "iommu": False, "id": "_vsock0"},
    "rng": {"src": "/dev/urandom"},
    "fs": [
        {
            "tag": "hc_layers",
            "socket": "/t/run/fs-hc_layers.sock",
            "num_queues": 1,
            "queue_size": 1024,
            "id": "fs-hc_layers",
            "pci_segment": 0,
        },
        {
            "tag": "hc_pod",
            "socket": "/t/run/fs-hc_pod.sock",
            "num_queues": 1,
            "queue_size": 1024,
            "id": "fs-hc_pod",
            "pci_segment": 0,
        },
    ],
    "net": [{"id": "net0", "mac": "02:00:00:00:00:01", "ip": None, "num_queues": 2}],
    "iommu": False,
}

POD = {
    "payload": {"kernel": "/k", "initramfs": "/i", "cmdline": "quiet"},
    "cpus": {"boot_vcpus": 1, "max_vcpus": 1},
    "memory": {"size": 128 << 20, "shared": True},
    "serial": {"mode": "File", "file": "/p/console.log"},
    "console": {"mode": "File", "file": "/p/run/hvc0.log"},
    "vsock": {"cid": 3, "socket": "/p/run/vsock.sock"},
    "rng": {"src": "/dev/urandom"},
    "fs": [
        {
            "tag": "hc_pod",
            "socket": "/p/run/fs-hc_pod.sock",
            "num_queues": 1,
            "queue_size": 1024,
            "id": "fs-hc_pod",
        },
        {
            "tag": "hc_layers",
            "socket": "/p/run/fs-hc_layers.sock",
            "num_queues": 1,
            "queue_size": 1024,
            "id": "fs-hc_layers",
        },
    ],
    "net": [{"tap": "hctap7", "id": "net0", "mac": "52:54:00:12:34:56"}],
}


def test_the_clone_has_the_pods_back_ends_and_everything_else_of_the_template():
    before = json.dumps(TEMPLATE)
    clone = snapshot.clone_config(TEMPLATE, POD)
    assert json.dumps(TEMPLATE) == before  # the template's own config is left alone
    assert clone["serial"] == {"mode": "File", "file": "/p/console.log", "iommu": False}
    assert clone["console"]["file"] == "/p/run/hvc0.log"
    assert clone["vsock"] == {
        "cid": 3,
        "socket": "/p/run/vsock.sock",
        "iommu": False,
        "id": "_vsock0",
    }
    # Devices stay in the template's order, with its ids and settings; sockets are the pod's.
    assert [(fs["tag"], fs["socket"], fs["pci_segment"]) for fs in clone["fs"]] == [
        ("hc_layers", "/p/run/fs-hc_layers.sock", 0),
        ("hc_pod", "/p/run/fs-hc_pod.sock", 0),
    ]
    assert clone["net"] == [
        {"id": "net0", "mac": "52:54:00:12:34:56", "ip": None, "num_queues": 2, "tap": "hctap7"}
    ]
    assert clone["memory"] == TEMPLATE["memory"]  # vhost-user needs it shared, as it was
    assert clone["cpus"] == TEMPLATE["cpus"] and clone["iommu"] is False


def test_a_pod_without_a_mac_keeps_none_of_the_templates():
    pod = {**POD, "net": [{"tap": "hctap7", "id": "net0"}]}
    assert snapshot.clone_config(TEMPLATE, pod)["net"][0].get("mac") is None


@pytest.mark.parametrize(
    "change",
    [
        {"fs": POD["fs"][:1]},  # a share fewer
        {"fs": [{**POD["fs"][0], "tag": "hc_vol_0"}, POD["fs"][1]]},  # another tag
        {"net": []},  # no interface where the template has one
        {"net": [{**POD["net"][0], "id": "net1"}]},
    ],
)
def test_devices_that_are_not_the_templates_are_refused(change):
    with pytest.raises(DriverError, match="devices are not the pod's"):
        snapshot.clone_config(TEMPLATE, {**POD, **change})


def template_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "template"
    directory.mkdir()
    (directory / snapshot.CONFIG).write_text(json.dumps(TEMPLATE))
    (directory / snapshot.STATE).write_text('{"devices": []}')
    (directory / snapshot.MEMORY).write_bytes(b"guest RAM")
    for name in snapshot.FILES:
        (directory / name).chmod(0o400)
    return directory


def test_a_clone_links_the_templates_state_and_memory(tmp_path: Path):
    template, clone = template_dir(tmp_path), tmp_path / "clone"
    snapshot.make_clone(template, clone, POD)
    assert json.loads((clone / snapshot.CONFIG).read_text()) == snapshot.clone_config(TEMPLATE, POD)
    for name in (snapshot.STATE, snapshot.MEMORY):
        assert (clone / name).stat().st_ino == (template / name).stat().st_ino
    assert json.loads((template / snapshot.CONFIG).read_text()) == TEMPLATE
    assert snapshot.restore_config(clone) == {
        "source_url": f"file://{clone}",
        "prefault": False,
        "memory_restore_mode": "OnDemand",
        "resume": False,
    }


def test_across_file_systems_a_clone_links_symbolically(tmp_path: Path, monkeypatch):
    def cross_device(source, target):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(snapshot.os, "link", cross_device)
    template, clone = template_dir(tmp_path), tmp_path / "clone"
    snapshot.make_clone(template, clone, POD)
    assert (clone / snapshot.MEMORY).readlink() == template / snapshot.MEMORY
    assert (clone / snapshot.MEMORY).read_bytes() == b"guest RAM"


def test_an_unreadable_template_makes_no_clone(tmp_path: Path):
    template, clone = template_dir(tmp_path), tmp_path / "clone"
    (template / snapshot.CONFIG).chmod(0o600)
    (template / snapshot.CONFIG).write_text("{not json")
    with pytest.raises(DriverError, match="unreadable config.json"):
        snapshot.make_clone(template, clone, POD)
    assert not clone.exists()

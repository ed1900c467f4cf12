"""The VmConfig built from a VMSpec (its conformance to the spec is checked
by the contract tests in tests/integration/cloud_hypervisor)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypercontainer.drivers import NetworkAttachment, VMSpec
from hypercontainer.errors import UserError
from hypercontainer_plugins.hypervisors.cloud_hypervisor.vmconfig import net_config, vm_config


def spec(**fields) -> VMSpec:
    values = dict(
        pod_id="p",
        vm_name="vm-p",
        vcpus=1,
        memory_mb=128,
        kernel=Path("/k"),
        initrd=Path("/i"),
        kernel_args=["console=ttyS0"],
        run_dir=Path("/run/p"),
        console_log=Path("/log/p.console"),
    )
    values.update(fields)
    return VMSpec(**values)


def test_resources_payload_and_outputs_come_from_the_spec():
    config = vm_config(spec(vcpus=3, memory_mb=512), Path("/run/p/v.sock"), Path("/run/p/h"))
    assert config["cpus"] == {"boot_vcpus": 3, "max_vcpus": 3}
    assert config["memory"] == {"size": 512 << 20, "shared": False}
    assert config["payload"]["cmdline"] == "console=ttyS0"
    assert config["serial"] == {"mode": "File", "file": "/log/p.console"}
    assert config["console"] == {"mode": "File", "file": "/run/p/h"}
    assert config["vsock"] == {"cid": 3, "socket": "/run/p/v.sock"}


def test_virtio_fs_makes_guest_memory_shared():
    fs = [{"tag": "t", "socket": "/s", "num_queues": 1, "queue_size": 1024}]
    assert vm_config(spec(), Path("/v"), Path("/h"), fs=fs)["memory"]["shared"] is True
    assert vm_config(spec(), Path("/v"), Path("/h"), shared_memory=True)["memory"]["shared"]


def test_networks():
    assert net_config(None) is None
    assert net_config(NetworkAttachment(kind="none")) is None
    assert net_config(NetworkAttachment(kind="tap", tap="tap0", mac="52:54:00:00:00:01")) == {
        "tap": "tap0",
        "id": "net0",
        "mac": "52:54:00:00:00:01",
    }
    with pytest.raises(UserError, match="no user-mode networking"):
        net_config(NetworkAttachment(kind="user"))
    with pytest.raises(UserError, match="kind 'cni'"):
        net_config(NetworkAttachment(kind="cni"))
    with pytest.raises(UserError, match="kind 'tap'"):
        net_config(NetworkAttachment(kind="tap"))


def test_impossible_resources_are_refused():
    with pytest.raises(UserError, match="at least 1"):
        vm_config(spec(vcpus=0), Path("/v"), Path("/h"))

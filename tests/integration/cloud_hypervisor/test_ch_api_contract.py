"""The API client against the stand-in built from Cloud Hypervisor's spec.

Every endpoint is called at least once; the stand-in validates each body
against the spec (the `journal` fixture fails the test on any violation) and
answers with the real server's states and status codes.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from ch_standin import Vmm
from hypercontainer.errors import DriverError
from hypercontainer_plugins.hypervisors.cloud_hypervisor.client import (
    ApiError,
    ApiUnreachable,
    Client,
)


def method_name(path: str) -> str:
    return path.lstrip("/").replace(".", "_").replace("-", "_")


def test_the_client_and_the_standin_cover_every_path_of_the_spec(spec):
    missing_client = [p for p in spec.paths if not callable(getattr(Client, method_name(p), None))]
    missing_standin = [p for p in spec.paths if not hasattr(Vmm, "do_" + method_name(p))]
    assert missing_client == []
    assert missing_standin == []


def test_the_standin_refuses_a_body_the_spec_forbids(standin_api, journal):
    with Client(standin_api) as client:
        with pytest.raises(ApiError) as refused:
            client.vm_create({"payload": {}, "cpus": {"boot_vcpus": 0, "max_vcpus": 1}})
    assert refused.value.status == 400
    assert "boot_vcpus: 0 is less than the minimum of 1" in str(refused.value)
    # The violation is on record; clear it so the journal check accepts this test.
    assert journal.schema_errors()
    journal.path.unlink()


def test_errors_read_as_one_line_made_of_the_servers_messages(standin_api, journal):
    with Client(standin_api) as client:
        with pytest.raises(ApiError) as no_vm:
            client.vm_boot()
        with pytest.raises(ApiError) as unknown:
            client._get("vm.frobnicate")
    assert no_vm.value.status == 404
    assert str(no_vm.value) == (
        "cloud-hypervisor vm.boot: Error from API: The VM could not boot: VM is not created"
    )
    assert (unknown.value.status, unknown.value.messages) == (404, ["Not Found"])


def test_a_missing_socket_is_reported_as_unreachable(workdir):
    with Client(workdir / "nothing.sock") as client:
        with pytest.raises(ApiUnreachable, match="nothing.sock is not answering"):
            client.vmm_ping()
    assert issubclass(ApiUnreachable, DriverError)


def vm_config(workdir: Path, boot_files) -> dict:
    kernel, initrd = boot_files
    return {
        "payload": {"kernel": str(kernel), "initramfs": str(initrd), "cmdline": "console=ttyS0"},
        "cpus": {"boot_vcpus": 1, "max_vcpus": 2},
        "memory": {"size": 128 << 20},
        "serial": {"mode": "File", "file": str(workdir / "serial.log")},
        "console": {"mode": "Off"},
        "vsock": {"cid": 3, "socket": str(workdir / "vsock.sock"), "id": "vsock0"},
    }


def test_every_endpoint_through_a_vm_lifetime(standin_api, journal, workdir, boot_files, spec):
    image = workdir / "disk.img"
    image.write_bytes(b"\0" * 4096)
    snapshot = workdir / "snapshot"
    snapshot.mkdir()
    client = Client(standin_api)

    ping = client.vmm_ping()
    assert ping["version"] and isinstance(ping["pid"], int)
    with pytest.raises(ApiError) as info_before:
        client.vm_info()
    assert info_before.value.status == 404

    client.vm_create(vm_config(workdir, boot_files))
    assert client.vm_info()["state"] == "Created"
    with pytest.raises(ApiError, match="already created"):
        client.vm_create(vm_config(workdir, boot_files))
    with pytest.raises(ApiError) as pause_unbooted:
        client.vm_pause()
    assert pause_unbooted.value.status == 500  # the real server's answer, not the spec's 404

    client.vm_boot()
    assert client.vm_info()["state"] == "Running"
    assert "stand-in" in (workdir / "serial.log").read_text()

    client.vm_pause()
    assert client.vm_info()["state"] == "Paused"
    with pytest.raises(ApiError, match="Invalid transition from Paused"):
        client.vm_pause()
    client.vm_snapshot(f"file://{snapshot}")
    assert (snapshot / "config.json").exists()
    client.vm_coredump(f"file://{workdir / 'core'}")
    client.vm_resume()
    with pytest.raises(ApiError, match="Invalid transition from Running"):
        client.vm_resume()

    # Devices, hot-plugged into the running VM: each answers its PCI address.
    added = client.vm_add_disk({"path": str(image), "readonly": True, "id": "disk0"})
    assert added["id"] == "disk0" and added["bdf"]
    with pytest.raises(ApiError) as duplicate:
        client.vm_add_disk({"path": str(image), "id": "disk0"})
    assert duplicate.value.status == 409
    with pytest.raises(ApiError, match="Cannot open a disk image"):
        client.vm_add_disk({"path": str(workdir / "absent.img")})
    client.vm_resize_disk("disk0", 8192)
    with pytest.raises(ApiError) as unknown_disk:
        client.vm_resize_disk("disk9", 8192)
    assert unknown_disk.value.status == 404
    client.vm_remove_device("disk0")
    with pytest.raises(ApiError) as removed_twice:
        client.vm_remove_device("disk0")
    assert removed_twice.value.status == 404

    with pytest.raises(ApiError, match="tap hc-absent0 does not exist"):
        client.vm_add_net({"tap": "hc-absent0", "mac": "52:54:00:12:34:56"})
    with pytest.raises(ApiError, match="vhost-user-fs"):
        client.vm_add_fs(
            {
                "tag": "t",
                "socket": str(workdir / "absent.sock"),
                "num_queues": 1,
                "queue_size": 1024,
            }
        )
    with pytest.raises(ApiError, match="Only one vsock"):
        client.vm_add_vsock({"cid": 4, "socket": str(workdir / "vsock2.sock")})
    assert client.vm_add_pmem({"file": str(image), "discard_writes": True})["id"]
    assert client.vm_add_device({"path": "/sys/bus/pci/devices/0000:00:01.0/"})["id"]
    assert client.vm_add_user_device({"socket": str(workdir / "user.sock")})["id"]
    assert client.vm_add_vdpa({"path": "/dev/vhost-vdpa-0", "num_queues": 1})["id"]
    assert client.vm_add_generic_vhost_user(
        {"socket": str(workdir / "gvu.sock"), "queue_sizes": [256], "device_type": 26}
    )["id"]

    client.vm_resize(desired_vcpus=2, desired_ram=256 << 20)
    assert client.vm_info()["config"]["cpus"]["boot_vcpus"] == 2
    with pytest.raises(ApiError) as no_zone:
        client.vm_resize_zone("zone0", 64 << 20)
    assert no_zone.value.status == 404
    assert client.vm_counters() == {}
    client.vm_nmi()
    client.vm_reboot()
    client.vm_power_button()  # this guest ignores it
    with pytest.raises(ApiError, match="migration"):
        client.vm_send_migration({"destination_url": "unix:/tmp/nowhere"})
    with pytest.raises(ApiError, match="migration"):
        client.vm_receive_migration({"receiver_url": "unix:/tmp/nowhere"})

    # vm.shutdown drops the VM, the config stays: Created, bootable again.
    client.vm_shutdown()
    assert client.vm_info()["state"] == "Created"
    assert not (workdir / "vsock.sock").exists()
    with pytest.raises(ApiError) as shutdown_twice:
        client.vm_shutdown()
    assert shutdown_twice.value.status == 500
    client.vm_boot()
    client.vm_delete()
    with pytest.raises(ApiError) as deleted:
        client.vm_info()
    assert deleted.value.status == 404

    client.vm_restore({"source_url": f"file://{snapshot}", "prefault": False})
    assert client.vm_info()["state"] == "Paused"
    client.vmm_shutdown()
    client.close()

    assert {e["path"] for e in journal.entries()} == spec.paths  # every endpoint was called
    assert not standin_api.exists()  # the VMM removed its socket on the way out


def test_vmm_shutdown_ends_the_process(make_binary, workdir, journal):
    socket_path = workdir / "api.sock"
    process = subprocess.Popen(
        [str(make_binary()), "--api-socket", f"path={socket_path}"], stdout=subprocess.PIPE
    )
    assert b"API on" in process.stdout.readline()
    with Client(socket_path) as client:
        client.vmm_shutdown()
    assert process.wait(timeout=30) == 0
    process.stdout.close()

"""The driver's pod lifecycle against the stand-in run as the `cloud-hypervisor` binary.

This proves the driver keeps the API contract and handles the VMM process
(start, agent handshake, pause, stop, death, cleanup); it does not prove that
a real Cloud Hypervisor boots the guest (none can run on this machine).
"""

from __future__ import annotations

import os
import signal
import threading

import pytest
from hypercontainer.drivers import Cap, NetworkAttachment, check_combination
from hypercontainer.errors import AgentTimeout, DriverError, UserError
from hypercontainer_plugins.hypervisors.cloud_hypervisor import CloudHypervisor
from hypercontainer_plugins.hypervisors.cloud_hypervisor.client import Client

MIB = 1024 * 1024


def echo(sock, data: bytes) -> bytes:
    sock.sendall(data)
    received = b""
    while len(received) < len(data):
        chunk = sock.recv(len(data) - len(received))
        assert chunk, "the stream closed"
        received += chunk
    return received


def vm_state(handle) -> str:
    with Client(f"{handle['run_dir']}/ch-api.sock") as client:
        return client.vm_info()["state"]


def test_a_pod_vm_lives_and_powers_off(make_binary, make_config, make_spec, journal):
    driver = CloudHypervisor(make_config(make_binary("--guest-powers-off")))
    spec = make_spec(network=NetworkAttachment(kind="none"))
    handle = driver.start(spec)
    exited = threading.Event()
    driver.watch(handle, exited.set)

    assert driver.is_running(handle)
    assert journal.paths()[-2:] == ["/vm.create", "/vm.boot"]
    config = journal.body("/vm.create")
    assert config["payload"] == {
        "kernel": str(spec.kernel),
        "initramfs": str(spec.initrd),
        "cmdline": "console=ttyS0 quiet",
    }
    assert config["cpus"] == {"boot_vcpus": 2, "max_vcpus": 2}
    assert config["memory"]["size"] == 256 * MIB
    assert config["serial"] == {"mode": "File", "file": str(spec.console_log)}
    assert config["console"]["mode"] == "File"
    assert config["vsock"]["socket"] == str(spec.run_dir / "vsock.sock")
    assert "net" not in config
    assert spec.console_log.exists()

    # The agent's stream: hybrid vsock handshake, then bytes both ways; a new one per call.
    with (
        driver.connect_agent(handle, timeout=10) as first,
        driver.connect_agent(handle, timeout=10) as second,
    ):
        assert echo(first, b"hello agent\n") == b"hello agent\n"
        assert echo(second, b"\x00\x01binary") == b"\x00\x01binary"

    driver.pause(handle)
    assert vm_state(handle) == "Paused"
    driver.resume(handle)
    assert vm_state(handle) == "Running"

    driver.stop(handle, timeout=10)
    assert not driver.is_running(handle)
    assert exited.wait(10), "the watch did not report the VMM's exit"
    assert "/vm.power-button" in journal.paths()
    assert "/vm.shutdown" not in journal.paths()  # the guest went by itself

    driver.cleanup(handle)
    assert sorted(p.name for p in spec.run_dir.iterdir()) == []


def test_a_guest_that_ignores_the_power_button_is_stopped(
    make_binary, make_config, make_spec, journal
):
    driver = CloudHypervisor(make_config(make_binary()))
    handle = driver.start(make_spec())
    driver.stop(handle, timeout=0.2)
    assert not driver.is_running(handle)
    assert journal.paths()[-5:] == [
        "/vm.info",
        "/vm.power-button",
        "/vm.shutdown",
        "/vm.delete",
        "/vmm.shutdown",
    ]
    driver.cleanup(handle)


def test_a_paused_vm_is_stopped_without_asking_the_guest(
    make_binary, make_config, make_spec, journal
):
    driver = CloudHypervisor(make_config(make_binary("--guest-powers-off")))
    handle = driver.start(make_spec())
    driver.pause(handle)
    driver.stop(handle, timeout=10)
    assert not driver.is_running(handle)
    assert "/vm.power-button" not in journal.paths()
    assert journal.paths()[-3:] == ["/vm.shutdown", "/vm.delete", "/vmm.shutdown"]
    driver.cleanup(handle)


def test_a_vmm_that_dies_is_noticed(make_binary, make_config, make_spec, journal):
    driver = CloudHypervisor(make_config(make_binary()))
    handle = driver.start(make_spec())
    exited = threading.Event()
    driver.watch(handle, exited.set)
    os.kill(handle["vmm"]["pid"], signal.SIGKILL)
    assert exited.wait(10)
    assert not driver.is_running(handle)
    with pytest.raises(DriverError, match="VM died|not running"):
        driver.connect_agent(handle, timeout=30)
    with pytest.raises(DriverError, match="not running"):
        driver.pause(handle)
    driver.stop(handle, timeout=1)  # nothing left to stop: no error
    driver.cleanup(handle)


def test_the_agent_is_waited_for_until_it_listens(make_binary, make_config, make_spec, journal):
    driver = CloudHypervisor(make_config(make_binary("--agent-after", "3")))
    handle = driver.start(make_spec())
    with driver.connect_agent(handle, timeout=30) as stream:
        assert echo(stream, b"ping") == b"ping"
    driver.stop(handle, timeout=0.1)
    driver.cleanup(handle)


def test_an_agent_that_never_listens_times_out(make_binary, make_config, make_spec, journal):
    driver = CloudHypervisor(make_config(make_binary("--agent-after", "1000000")))
    handle = driver.start(make_spec())
    with pytest.raises(AgentTimeout, match="vsock port 1024"):
        driver.connect_agent(handle, timeout=0.5)
    driver.stop(handle, timeout=0.1)
    driver.cleanup(handle)


def test_user_networking_is_refused_before_anything_starts(
    make_binary, make_config, make_spec, journal
):
    driver = CloudHypervisor(make_config(make_binary()))
    spec = make_spec(network=NetworkAttachment(kind="user"))
    with pytest.raises(UserError, match="no user-mode networking.*bridge"):
        driver.start(spec)
    assert not spec.run_dir.exists()
    assert journal.entries() == []


def test_the_core_refuses_user_networking_with_this_hypervisor(make_binary, make_config):
    from hypercontainer.drivers import Network

    class UserNet(Network):
        name = "user"
        requires = frozenset({Cap.USER_NETWORK})

        def attach(self, pod_id, forwards):
            raise AssertionError("not reached")

        def detach(self, pod_id, attachment):
            raise AssertionError("not reached")

    config = make_config(make_binary())
    with pytest.raises(UserError, match="cloud-hypervisor cannot serve network user"):
        check_combination(CloudHypervisor(config), UserNet(config))


def test_a_missing_binary_is_a_clear_error(make_config, make_spec, workdir):
    driver = CloudHypervisor(make_config(workdir / "no" / "cloud-hypervisor"))
    with pytest.raises(UserError, match="not found: install Cloud Hypervisor"):
        driver.check()
    with pytest.raises(UserError, match="not found"):
        driver.start(make_spec())


def test_unusable_kvm_is_a_clear_error(make_binary, make_config, workdir):
    driver = CloudHypervisor(make_config(make_binary()))
    driver.kvm_device = workdir / "absent-kvm"
    with pytest.raises(UserError, match="needs KVM: cannot open"):
        driver.check()
    driver.kvm_device = os.devnull
    with pytest.raises(UserError, match="needs KVM: .* is unusable"):
        driver.check()


def test_a_vmm_that_fails_to_start_reports_why(make_config, make_spec, workdir):
    broken = workdir / "cloud-hypervisor"
    broken.write_text("#!/bin/sh\necho 'Error: KVM: No such file or directory' >&2\nexit 1\n")
    broken.chmod(0o755)
    driver = CloudHypervisor(make_config(broken))
    spec = make_spec()
    with pytest.raises(DriverError, match="exited at start: Error: KVM: No such file"):
        driver.start(spec)
    assert list(spec.run_dir.iterdir()) == []


def test_a_failed_boot_leaves_nothing_behind(
    make_binary, make_config, make_spec, journal, workdir, processes
):
    driver = CloudHypervisor(make_config(make_binary()))
    spec = make_spec(kernel=workdir / "missing-vmlinuz")
    with pytest.raises(DriverError, match="Cannot open the kernel"):
        driver.start(spec)
    assert journal.paths()[-1] == "/vm.boot"
    assert list(spec.run_dir.iterdir()) == []
    assert processes() == []


def test_a_vmm_whose_handle_was_lost_is_reaped_from_its_run_dir(
    make_binary, make_config, make_spec, journal, workdir, processes
):
    driver = CloudHypervisor(make_config(make_binary()))
    spec = make_spec()
    handle = driver.start(spec)
    # A daemon that crashed before recording the handle only knows the run directory.
    CloudHypervisor(make_config(make_binary())).reap(spec.run_dir)
    assert not driver.is_running(handle)
    assert list(spec.run_dir.iterdir()) == []
    assert processes() == []

"""Real QEMU VMs booting the real guest image, driven through the QEMU driver.

One VM boots fully and is shared by the tests that only look at it (module
fixture); the tests that end a VM start their own, which need not finish
booting.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypercontainer.agent.client import AgentClient
from hypercontainer.drivers import NetworkAttachment, PortForward, Share, VMHandle, VMSpec
from hypercontainer.errors import DriverError, UserError
from hypercontainer.guest import cpio
from hypercontainer.guest.image import INIT_SCRIPT
from hypercontainer_plugins.hypervisors.qemu import QemuHypervisor, cmdline

from tests.support.guestvm import EXEC_LINE, make_spec, wait_for_console

pytestmark = pytest.mark.vm


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_taken(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as e:
            return e.errno == errno.EADDRINUSE
        return False


def exited(pid: int) -> bool:
    """Gone, or a zombie waiting for init to reap it (QEMU daemonized: not our child)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def nothing_left(spec: VMSpec) -> bool:
    return not spec.run_dir.exists()


class Booted:
    def __init__(self, spec: VMSpec, handle: VMHandle, forward: PortForward) -> None:
        self.spec, self.handle, self.forward = spec, handle, forward


@pytest.fixture(scope="module")
def booted(
    qemu: QemuHypervisor, guest_image, run_root: Path, tmp_path_factory, config
) -> Iterator[Booted]:
    layers = tmp_path_factory.mktemp("layers")
    run_dir = run_root / "booted"
    run_dir.mkdir()
    spec = make_spec(guest_image, run_dir)
    forward = PortForward("tcp", "127.0.0.1", free_port(), 80)
    spec.shares = [Share("hc_layers", layers)]
    spec.network = NetworkAttachment(kind="user", mac="52:54:00:12:34:56", forwards=[forward])
    handle = qemu.start(spec)
    try:
        console = wait_for_console(spec.console_log, EXEC_LINE, config.guest.boot_timeout)
        assert EXEC_LINE in console, console[-2000:]
        yield Booted(spec, handle, forward)
    finally:
        qemu.stop(handle, timeout=1)
        qemu.cleanup(handle)


def test_init_reaches_the_agent(booted: Booted) -> None:
    console = booted.spec.console_log.read_text(errors="replace")
    assert EXEC_LINE in console
    assert "hc-init: FAILED" not in console


def test_the_agent_answers_a_ping_through_connect_agent(
    qemu: QemuHypervisor, booted: Booted, config
) -> None:
    stream = qemu.connect_agent(booted.handle, timeout=10)
    with AgentClient(
        stream, on_event=lambda event: None, on_output=lambda key, fd, data: None
    ) as client:
        client.wait_ready(config.guest.boot_timeout)
        client.ping()


def test_pause_and_resume_change_the_run_state(qemu: QemuHypervisor, booted: Booted) -> None:
    assert qemu.status(booted.handle) == "running"
    qemu.pause(booted.handle)
    try:
        assert qemu.status(booted.handle) == "paused"
    finally:
        qemu.resume(booted.handle)
    assert qemu.status(booted.handle) == "running"


def test_host_forwards_listen_and_can_be_added_and_removed(
    qemu: QemuHypervisor, booted: Booted
) -> None:
    assert port_taken(booted.forward.host_port)  # set up at start
    extra = PortForward("tcp", "127.0.0.1", free_port(), 8080)
    qemu.add_forward(booted.handle, extra)
    assert port_taken(extra.host_port)
    with pytest.raises(UserError, match="cannot forward"):
        qemu.add_forward(booted.handle, extra)  # that host port is QEMU's already
    qemu.remove_forward(booted.handle, extra)
    assert not port_taken(extra.host_port)
    with pytest.raises(UserError, match="not found"):
        qemu.remove_forward(booted.handle, extra)


def test_the_vm_is_its_own_session_not_our_child(qemu: QemuHypervisor, booted: Booted) -> None:
    pid = booted.handle["pid"]
    assert os.getsid(pid) != os.getsid(0)
    parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert parent != os.getpid()


def test_a_new_driver_adopts_the_vm_from_its_handle(config, booted: Booted) -> None:
    adopted = QemuHypervisor(config)
    handle = json.loads(json.dumps(booted.handle))  # as the store keeps it
    assert adopted.is_running(handle)
    assert adopted.status(handle) == "running"


def test_stop_ends_the_vm_and_cleanup_leaves_nothing(qemu: QemuHypervisor, vm_spec) -> None:
    handle = qemu.start(vm_spec)
    assert qemu.is_running(handle)
    qemu.stop(handle, timeout=1)  # the guest ignores ACPI power-off: quit follows
    assert not qemu.is_running(handle)
    assert exited(handle["pid"])
    qemu.cleanup(handle)
    assert nothing_left(vm_spec)


def test_kill_9_is_seen_by_watch_and_is_running(qemu: QemuHypervisor, vm_spec) -> None:
    handle = qemu.start(vm_spec)
    exited = threading.Event()
    qemu.watch(handle, exited.set)
    assert not exited.wait(0.5)
    os.kill(handle["pid"], signal.SIGKILL)
    assert exited.wait(30)
    assert not qemu.is_running(handle)
    with pytest.raises(DriverError, match="not running"):
        qemu.pause(handle)
    qemu.cleanup(handle)
    assert nothing_left(vm_spec)


def test_the_vm_outlives_the_process_that_started_it(qemu: QemuHypervisor, vm_spec) -> None:
    starter = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from hypercontainer.config import load\n"
        "from hypercontainer.drivers import VMSpec\n"
        "from hypercontainer_plugins.hypervisors.qemu import QemuHypervisor\n"
        "spec = VMSpec(**json.loads(sys.argv[1]))\n"
        "for key in ('kernel', 'initrd', 'run_dir', 'console_log'):\n"
        "    setattr(spec, key, Path(getattr(spec, key)))\n"
        "config = load().model_copy(update={'run_root': Path(sys.argv[2])})\n"
        "print(json.dumps(QemuHypervisor(config).start(spec)))\n"
    )
    fields = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(vm_spec).items()}
    done = subprocess.run(
        [sys.executable, "-c", starter, json.dumps(fields), str(qemu.config.run_root)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    handle = json.loads(done.stdout.strip().splitlines()[-1])
    try:
        assert qemu.is_running(handle)  # its starter has exited
        assert qemu.status(handle) == "running"
    finally:
        qemu.stop(handle, timeout=1)
        qemu.cleanup(handle)
    assert nothing_left(vm_spec)


def test_a_failed_start_cleans_up_and_says_why(qemu: QemuHypervisor, vm_spec, tmp_path) -> None:
    not_a_kernel = tmp_path / "vmlinux"
    not_a_kernel.write_text("this is no kernel\n")
    vm_spec.kernel = not_a_kernel
    with pytest.raises(DriverError, match="qemu failed to start the VM: .*kernel"):
        qemu.start(vm_spec)
    assert nothing_left(vm_spec)


def test_bad_input_is_refused_before_anything_starts(qemu: QemuHypervisor, vm_spec) -> None:
    vm_spec.shares = [Share("bad tag", vm_spec.run_dir)]
    vm_spec.run_dir.rmdir()
    with pytest.raises(UserError, match="share tag"):
        qemu.start(vm_spec)
    assert nothing_left(vm_spec)


def test_a_failing_init_says_so_and_the_vm_powers_off(
    qemu: QemuHypervisor, vm_spec, tmp_path, config
) -> None:
    # The kernel unpacks concatenated archives in order: this one replaces the module list.
    override = tmp_path / "override"
    (override / "etc/hc").mkdir(parents=True)
    (override / "etc/hc/modules").write_text("no-such-module.ko\n")
    overlay = tmp_path / "override.img"
    cpio.write(override, overlay, {})
    broken = tmp_path / "initrd.img"
    broken.write_bytes(vm_spec.initrd.read_bytes() + overlay.read_bytes())
    vm_spec.initrd = broken

    handle = qemu.start(vm_spec)
    exited = threading.Event()
    qemu.watch(handle, exited.set)
    try:
        assert exited.wait(config.guest.boot_timeout), "the VM did not power off"
        console = vm_spec.console_log.read_text(errors="replace")
        assert "hc-init: FAILED: insmod /lib/modules/no-such-module.ko" in console
        assert EXEC_LINE not in console
    finally:
        qemu.stop(handle, timeout=0)
        qemu.cleanup(handle)


def test_device_modules_load_only_for_devices_present(
    qemu: QemuHypervisor, vm_spec, tmp_path, config, monkeypatch
) -> None:
    # The real /init, told to list the loaded modules on the console before its exec line.
    exec_line = f'    echo "{EXEC_LINE}"'
    init = INIT_SCRIPT.read_text().replace(
        exec_line, f"    sed 's/ .*//; s/^/hc-test: module /' /proc/modules\n{exec_line}"
    )
    assert init != INIT_SCRIPT.read_text()
    override = tmp_path / "override"
    override.mkdir()
    (override / "init").write_text(init)
    (override / "init").chmod(0o755)
    cpio.write(override, tmp_path / "override.img", {})
    initrd = tmp_path / "initrd.img"
    initrd.write_bytes(vm_spec.initrd.read_bytes() + (tmp_path / "override.img").read_bytes())
    vm_spec.initrd = initrd
    disk = tmp_path / "disk.raw"
    disk.write_bytes(b"\0" * 2**20)
    # A virtio block device (but no vsock device) in the VM.
    build = cmdline.build
    monkeypatch.setattr(
        cmdline,
        "build",
        lambda *args, **kwargs: (
            build(*args, **kwargs)[:-3]
            + ["-drive", f"file={disk},format=raw,if=virtio", *build(*args, **kwargs)[-3:]]
        ),
    )

    handle = qemu.start(vm_spec)
    try:
        console = wait_for_console(vm_spec.console_log, EXEC_LINE, config.guest.boot_timeout)
        loaded = {
            line.split()[-1] for line in console.splitlines() if line.startswith("hc-test: module ")
        }
        assert {"virtio_blk", "ext4", "9p", "overlay", "virtio_console"} <= loaded, console
        assert not {"vsock", "vmw_vsock_virtio_transport"} & loaded
    finally:
        qemu.stop(handle, timeout=0)
        qemu.cleanup(handle)

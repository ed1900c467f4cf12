"""The whole guest path: a real VM (QEMU, the project's guest image), the agent as its PID 1,
real crun in the guest, driven by the host client over the virtio-serial port.

One boot serves the whole scenario, since a boot costs seconds under TCG.
"""

from __future__ import annotations

import queue
import shutil
import threading

import pytest
from agent_harness import container_config, make_busybox_layers
from hypercontainer.agent.client import AgentClient
from hypercontainer.config import Config
from hypercontainer.drivers import NetworkAttachment, Share, VMSpec
from hypercontainer.errors import AgentError

pytestmark = pytest.mark.vm

MAC = "52:54:00:12:34:56"


class Recorder:
    def __init__(self) -> None:
        self.exits: dict[str, int] = {}
        self.output: dict[tuple[str, str], bytes] = {}
        self.changed = threading.Condition()

    def on_event(self, event: dict) -> None:
        with self.changed:
            if event.get("event") == "exit":
                self.exits[event["key"]] = event["code"]
            self.changed.notify_all()

    def on_output(self, key: str, fd: str, data: bytes) -> None:
        with self.changed:
            self.output[(key, fd)] = self.output.get((key, fd), b"") + data
            self.changed.notify_all()

    def wait_exit(self, key: str, timeout: float = 120) -> int:
        with self.changed:
            assert self.changed.wait_for(lambda: key in self.exits, timeout), key
            return self.exits[key]

    def stdout(self, key: str) -> bytes:
        return self.output.get((key, "stdout"), b"")


@pytest.fixture
def vm(tmp_path):
    if not shutil.which("qemu-system-x86_64"):
        pytest.skip("qemu-system-x86_64 is not installed")
    from hypercontainer.guest.image import ensure_image
    from hypercontainer_plugins.hypervisors.qemu import QemuHypervisor

    config = Config()
    image = ensure_image(config)
    layers = tmp_path / "layers"
    make_busybox_layers(layers)
    spec = VMSpec(
        pod_id="agent-vm-test",
        vm_name="agent-vm-test",
        vcpus=1,
        memory_mb=256,
        kernel=image.kernel,
        initrd=image.initrd,
        kernel_args=list(image.kernel_args),
        run_dir=tmp_path / "run",
        console_log=tmp_path / "console.log",
        shares=[Share("hc_layers", layers, readonly=True)],
        network=NetworkAttachment(
            kind="user", mac=MAC, address="10.0.2.15/24", gateway="10.0.2.2", dns=["10.0.2.3"]
        ),
    )
    qemu = QemuHypervisor(config)
    handle = qemu.start(spec)
    try:
        yield qemu, handle, spec
    finally:
        qemu.stop(handle, 10)
        qemu.cleanup(handle)


def connect(qemu, handle, recorder: Recorder) -> AgentClient:
    client = AgentClient(qemu.connect_agent(handle, 60), recorder.on_event, recorder.on_output)
    client.wait_ready(180)
    return client


def test_container_in_a_vm(vm):
    qemu, handle, spec = vm
    recorder = Recorder()
    client = connect(qemu, handle, recorder)
    try:
        client.start_pod(
            "vmpod",
            dns=["10.0.2.3"],
            interface={"mac": MAC, "address": "10.0.2.15/24", "gateway": "10.0.2.2"},
        )
        client.create_container(
            container_config(
                "c1", ["sh", "-c", "echo hello; hostname; cat /etc/motd; ip -4 addr; exit 3"]
            )
        )
        client.start_container("c1")
        assert recorder.wait_exit("c1") == 3
        out = recorder.stdout("c1").decode()
        assert out.startswith("hello\nvmpod\nfrom top\n")
        assert "inet 10.0.2.15/24" in out

        client.create_container(container_config("c2", ["sleep", "1000"]))
        client.start_container("c2")
        key = client.exec("c2", "e1", ["sh", "-c", "echo in-exec; exit 5"])
        assert recorder.wait_exit(key) == 5
        assert recorder.stdout(key) == b"in-exec\n"
        with pytest.raises(AgentError, match="executable file `nope` not found"):
            client.exec("c2", "e2", ["nope"])
    finally:
        client.close()

    # The daemon "restarts": a new client on the virtio-serial port, knowing nothing.
    recorder = Recorder()
    client = connect(qemu, handle, recorder)
    try:
        state = client.state()
        assert state["hostname"] == "vmpod"
        assert state["containers"]["c1"]["code"] == 3
        assert state["containers"]["c2"]["status"] == "running"
        client.signal("c2", 9)
        assert recorder.wait_exit("c2") == 137
        client.destroy_pod()
    finally:
        client.close()
    assert _wait_powered_off(qemu, handle)
    assert "]: pod destroyed" in spec.console_log.read_text(errors="replace")


def _wait_powered_off(qemu, handle, timeout: float = 60) -> bool:
    done: queue.Queue[bool] = queue.Queue()
    qemu.watch(handle, lambda: done.put(True))
    if not qemu.is_running(handle):
        return True
    try:
        return done.get(timeout=timeout)
    except queue.Empty:
        return False

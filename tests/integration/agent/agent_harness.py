"""Run the real guest agent on the host, with real crun, inside namespaces of its own.

The agent package is copied to <tmp>/hc/agent and started as `python3 -m agent`,
exactly as in the guest, under `unshare` (mount, uts, ipc, pid, network): it is
PID 1 there, forks and reaps as in the VM, and everything it mounts vanishes
with the namespaces. A directory stands in for the 9p shares; the layers are a
busybox root filesystem built here from the host's /bin/busybox.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from hypercontainer.agent.client import AgentClient

AGENT_SOURCE = Path(__file__).resolve().parents[3] / "core" / "guest" / "agent"
BUSYBOX = shutil.which("busybox") or "/bin/busybox"
MAC = "02:00:00:00:aa:01"

# Run by the namespace's PID 1 shell before it becomes the agent. A fresh sysfs
# shows the namespace's own NICs; the host's cgroup v1/v2 hybrid is replaced by a
# plain cgroup2 mount (crun wants one),
# the state directory gets a tmpfs (overlayfs wants an upper layer it supports),
# and a veth stands in for the VM's virtio-net device.
WRAPPER = """
set -e
mount -t sysfs sysfs /sys
mount -t cgroup2 none /sys/fs/cgroup
mount -t tmpfs tmpfs "$STATE"
ip link set lo up
ip link add hc0 address {mac} type veth peer name hc1
export PATH="$TOOLS:$PATH"
cd "$HC"
exec {python} -m agent --unix="$SOCK" --state="$STATE" --shares="$SHARES" \
    --crun-arg=--cgroup-manager=disabled --no-poweroff
"""


def requirements() -> str | None:
    """Why these tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("crun", "unshare", "ip", BUSYBOX):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    return None


def make_busybox_layers(layers: Path) -> None:
    """Two layers: `base` with busybox, `top` with users and a file overriding base's."""
    bin_dir = layers / "base" / "bin"
    bin_dir.mkdir(parents=True)
    shutil.copy(BUSYBOX, bin_dir / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True).stdout
    for applet in applets.split():
        if applet != "busybox":
            (bin_dir / applet).symlink_to("busybox")
    (layers / "base" / "etc").mkdir()
    (layers / "base" / "etc" / "motd").write_text("from base\n")
    (layers / "base" / "opq").mkdir()
    (layers / "base" / "opq" / "old").write_text("")
    etc = layers / "top" / "etc"
    etc.mkdir(parents=True)
    (etc / "motd").write_text("from top\n")
    (layers / "top" / "opq").mkdir()  # an opaque directory, if the config says so
    (layers / "top" / "opq" / "new").write_text("")
    (etc / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
    )
    (etc / "group").write_text("root:x:0:\napp:x:1000:\nstaff:x:50:app\naudio:x:29:\n")


class Harness:
    """A running agent and a client connected to it, recording events and output."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket_path = root / "agent.sock"
        self.shares = root / "shares"
        self.output: dict[tuple[str, str], bytearray] = {}
        self.eof: set[tuple[str, str]] = set()
        self.events: list[dict] = []
        self._changed = threading.Condition()
        self.client: AgentClient | None = None

        hc = root / "hc"
        shutil.copytree(AGENT_SOURCE, hc / "agent", ignore=shutil.ignore_patterns("__pycache__"))
        make_busybox_layers(self.shares / "hc_layers")
        (self.shares / "hc_vol_1").mkdir()
        state = root / "state"
        state.mkdir()
        tools = root / "tools"  # the guest's mount, umount and ip are busybox's
        tools.mkdir()
        for tool in ("mount", "umount", "ip"):
            (tools / tool).symlink_to(BUSYBOX)
        env = dict(
            os.environ,
            HC=str(hc),
            STATE=str(state),
            SOCK=str(self.socket_path),
            SHARES=str(self.shares),
            TOOLS=str(tools),
        )
        script = WRAPPER.format(mac=MAC, python=sys.executable)
        self.log = open(root / "agent.log", "wb")  # noqa: SIM115 - the agent's lifetime
        self.process = subprocess.Popen(
            [
                "unshare",
                "--kill-child",
                "--mount",
                "--uts",
                "--ipc",
                "--pid",
                "--net",
                "--fork",
                "--mount-proc",
                "sh",
                "-c",
                script,
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def connect(self, timeout: float = 20.0) -> AgentClient:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        deadline = time.monotonic() + timeout
        while True:  # the agent creates its socket once it runs: poll for it
            try:
                sock.connect(str(self.socket_path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"agent did not start:\n{self.agent_log()}") from None
                time.sleep(0.05)
        self.client = AgentClient(sock, self._on_event, self._on_output)
        self.client.wait_ready(timeout)
        return self.client

    def _on_event(self, event: dict) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def _on_output(self, key: str, fd: str, data: bytes) -> None:
        with self._changed:
            if data:
                self.output.setdefault((key, fd), bytearray()).extend(data)
            else:
                self.eof.add((key, fd))
            self._changed.notify_all()

    def wait_exit(self, key: str, timeout: float = 30.0) -> dict:
        with self._changed:
            found = self._changed.wait_for(
                lambda: next(
                    (e for e in self.events if e.get("event") == "exit" and e["key"] == key), None
                ),
                timeout,
            )
        assert found, f"no exit event for {key}; events: {self.events}\n{self.agent_log()}"
        return found

    def wait_output(self, key: str, fd: str, text: bytes, timeout: float = 30.0) -> bytes:
        with self._changed:
            self._changed.wait_for(lambda: text in self.output.get((key, fd), b""), timeout)
            return bytes(self.output.get((key, fd), b""))

    def stdout(self, key: str) -> bytes:
        return bytes(self.output.get((key, "stdout"), b""))

    def stderr(self, key: str) -> bytes:
        return bytes(self.output.get((key, "stderr"), b""))

    def agent_log(self) -> str:
        return (self.root / "agent.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)  # the namespaces' processes die with it
        self.process.wait(30)
        self.log.close()


def container_config(cid: str, args: list[str], **overrides) -> dict:
    """A create_container config over the test layers."""
    process = {
        "args": args,
        "env": ["PATH=/bin"],
        "cwd": "/",
        "user": "",
        "additional_groups": [],
        "terminal": False,
    }
    process.update(overrides.pop("process", {}))
    config = {
        "id": cid,
        "layers": ["base", "top"],
        "process": process,
        "hostname": None,
        "readonly_rootfs": False,
        "mounts": [],
        "files": [],
        "sysctl": {},
        "rlimits": [],
    }
    config.update(overrides)
    return config

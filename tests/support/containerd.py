"""Debian's containerd for a test: its own root, state, sockets and config (never the
machine's /run/containerd), the `hyper` runtime handler for its CRI plugin, images
imported offline with `ctr images import`, and the hyperd the shim starts.

Paths are short (under /tmp) because unix socket paths are limited to 108 bytes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypercontainer import mounts
from hypercontainer_plugins.images import busybox as busybox_image
from hypercontainer_plugins.images.build import Image, write_archive

from .daemon import processes_matching, qemu_pids

# The marks of a test that drives the shim through Debian's containerd.
SHIM_TESTS = [
    pytest.mark.vm,
    pytest.mark.root,
    pytest.mark.skipif(
        os.geteuid() != 0 or not shutil.which("containerd"),
        reason="needs root and Debian's containerd",
    ),
]
BUSYBOX = "docker.io/library/busybox:latest"
PAUSE = "hypercontainer.test/pause:1"  # the CRI sandbox image, built here
RUNTIME = "io.containerd.hyper.v2"
# A pause that ends on SIGTERM or SIGINT, as Kubernetes' does.
PAUSE_COMMAND = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]

CONFIG = """version = 2
root = "{root}/root"
state = "{root}/state"
[grpc]
  address = "{root}/c.sock"
[ttrpc]
  address = "{root}/c.sock.ttrpc"
[debug]
  level = "info"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  enable_cdi = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.hyper]
      runtime_type = "{runtime}"
      pod_annotations = ["io.hypercontainer.*"]
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.hyper.options]
        ConfigPath = "{hyperd_config}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{root}/cni"
"""


def pause_image() -> Image:
    image = busybox_image.image()
    image.cmd, image.entrypoint = [], PAUSE_COMMAND
    return image


class Containerd:
    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns  # run in this network namespace (its CNI bridge stays there)
        self.root = Path(tempfile.mkdtemp(prefix="ctd", dir="/tmp"))
        self.hyperd_root = self.root / "h"
        self.hyperd_config = self.root / "hyperd.toml"
        self.hyperd_config.write_text(
            f'state_root = "{self.hyperd_root}/s"\nrun_root = "{self.hyperd_root}/r"\n'
        )
        self.config = self.root / "containerd.toml"
        self.config.write_text(
            CONFIG.format(
                root=self.root, pause=PAUSE, runtime=RUNTIME, hyperd_config=self.hyperd_config
            )
        )
        (self.root / "cni").mkdir()
        self.address = str(self.root / "c.sock")
        self.log = self.root / "containerd.log"
        self.process: subprocess.Popen | None = None

    @property
    def env(self) -> dict[str, str]:
        # The shim is found on PATH, as containerd looks for containerd-shim-hyper-v2.
        scripts = sysconfig.get_path("scripts")
        env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERCONTAINER_")}
        return env | {"PATH": f"{scripts}:{os.environ.get('PATH', '/usr/bin:/bin')}"}

    def start(self) -> Containerd:
        log = open(self.log, "ab")  # noqa: SIM115 - containerd's lifetime
        prefix = ["nsenter", f"--net={self.netns}"] if self.netns else []
        self.process = subprocess.Popen(
            [*prefix, "containerd", "--config", str(self.config)],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while self.ctr("version", check=False).returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("containerd did not start:\n" + self.log.read_text()[-3000:])
            time.sleep(0.1)
        return self

    def ctr(
        self,
        *args: str,
        namespace: str = "default",
        check: bool = True,
        timeout: float = 300,
        input: bytes | None = None,
    ) -> subprocess.CompletedProcess:
        result = subprocess.run(
            self.ctr_command(*args, namespace=namespace),
            capture_output=True,
            timeout=timeout,
            env=self.env,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"ctr {' '.join(args)} failed ({result.returncode}): "
                f"{result.stderr.decode(errors='replace')}"
            )
        return result

    def ctr_command(self, *args: str, namespace: str = "default") -> list[str]:
        """ctr's command line for `args` against this containerd."""
        return ["ctr", "--address", self.address, "--namespace", namespace, *args]

    def runtime_options(self) -> list[str]:
        """`ctr run`'s options for a task on the shim, with this containerd's hyperd."""
        return ["--runtime", RUNTIME, "--runtime-config-path", str(self.hyperd_config)]

    def import_images(self, namespace: str = "default") -> None:
        """busybox (from busybox-static) and the pause image, offline."""
        archive = self.root / "images.tar"
        busybox_top, busybox_blobs = busybox_image.image().build()
        pause_top, pause_blobs = pause_image().build()
        write_archive(
            archive, [(BUSYBOX, busybox_top, busybox_blobs), (PAUSE, pause_top, pause_blobs)]
        )
        self.ctr("images", "import", "--all-platforms", str(archive), namespace=namespace)

    def shim_pids(self) -> list[int]:
        """Shim processes serving this containerd (they are given its hyperd config)."""
        return processes_matching(
            b"hypercontainer.shim.main", b" serve", str(self.hyperd_config).encode()
        )

    def hyperd_pids(self) -> list[int]:
        return processes_matching(b"hypercontainer.api.server", str(self.hyperd_config).encode())

    def qemu_pids(self) -> list[int]:
        return qemu_pids(self.hyperd_root / "r")

    def hyperctl(self, *args: str) -> subprocess.CompletedProcess:
        import sys

        return subprocess.run(
            [
                sys.executable,
                "-m",
                "hypercontainer.cli.main",
                "--config",
                str(self.hyperd_config),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=self.env,
        )

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        for pid in self.shim_pids() + self.hyperd_pids() + self.qemu_pids():
            _kill(pid)
        mounts.unmount_all(str(self.root))
        keep = os.environ.get("HC_KEEP_CONTAINERD_LOG")  # a file name, for a post-mortem
        if keep:
            shutil.copy(self.log, keep)
            hyperd_log = self.hyperd_root / "s" / "hyperd.log"
            if hyperd_log.exists():
                shutil.copy(hyperd_log, keep + ".hyperd")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def started_containerd(namespace: str = "default", hyperd: str = "") -> Iterator[Containerd]:
    """A started containerd holding the test images in `namespace`, `hyperd` added to the
    configuration of the hyperd its shims start; stopped after."""
    daemon = Containerd()
    daemon.hyperd_config.write_text(daemon.hyperd_config.read_text() + hyperd)
    daemon.start()
    try:
        daemon.import_images(namespace=namespace)
        yield daemon
    finally:
        daemon.stop()


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass

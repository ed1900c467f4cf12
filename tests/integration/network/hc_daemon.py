"""A private hyperd for one test, optionally inside a network namespace, driven by hyperctl.

Everything it runs (hyperd, and through it QEMU, ip and nft) inherits the
namespace, so a bridge made for its pods lives and dies there.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hypercontainer.config import load
from hypercontainer_plugins.images import busybox

DAEMON_START = 60.0


class Daemon:
    def __init__(
        self,
        workdir: Path,
        network: str,
        netns: str | None = None,
        config: str = "",
        netns_only: bool = False,
    ) -> None:
        """`netns_only`: enter only the namespace's network (nsenter), not the mount
        namespace `ip netns exec` makes: named namespaces this hyperd creates are then
        the machine's, seen by the test and by a hyperd started again."""
        if netns and netns_only:
            self.prefix = ["nsenter", f"--net=/run/netns/{netns}", "--"]
        else:
            self.prefix = ["ip", "netns", "exec", netns] if netns else []
        # Unix socket paths are limited to 107 bytes: keep the run root short.
        self.run_root = Path(tempfile.mkdtemp(prefix="hcn-", dir="/tmp"))
        self.config = workdir / "config.toml"
        self.config.write_text(
            f'network = "{network}"\n'
            f'state_root = "{workdir / "state"}"\n'
            f'run_root = "{self.run_root}"\n'
            # The machine's guest image cache: building the image is not under test here.
            f'cache_root = "{load(environ={}).cache_root}"\n' + config
        )
        self.log = workdir / "hyperd.log"
        self.start()
        archive = workdir / "busybox.tar"
        busybox.write(archive)
        self.hyperctl("load", "-i", str(archive))

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *self.prefix,
                    sys.executable,
                    "-m",
                    "hypercontainer.api.server",
                    "--config",
                    str(self.config),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        self._wait_for_socket(self.run_root / "hyperd.sock")

    def kill(self) -> None:
        """kill -9 hyperd (its VMs live on)."""
        self.process.kill()
        self.process.wait(timeout=60)

    def _wait_for_socket(self, path: Path) -> None:
        # Another process binding a socket: nothing to wait on but the socket itself.
        deadline = time.monotonic() + DAEMON_START
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"hyperd exited: {self.log.read_text()[-2000:]}")
            with socket.socket(socket.AF_UNIX) as probe:
                if probe.connect_ex(str(path)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError("hyperd did not start")

    def _run(self, args: tuple[str, ...]) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                *self.prefix,
                shutil.which("hyperctl") or "hyperctl",
                "--config",
                str(self.config),
                *args,
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
        )

    def hyperctl(self, *args: str, check: bool = True) -> str:
        done = self._run(args)
        if check and done.returncode != 0:
            raise AssertionError(f"hyperctl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def refused(self, *args: str) -> str:
        """The one-line error of a hyperctl command that must fail."""
        done = self._run(args)
        assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
        return done.stderr.strip()

    def logs_of(self, pod: str) -> str:
        (container,) = self.hyperctl("list", "container", "-p", pod, "-q").split()
        return self.hyperctl("logs", container, check=False)

    def stop(self) -> None:
        """Remove every pod (their VMs outlive hyperd), then stop hyperd."""
        try:
            for pod in self.hyperctl("list", "-q", check=False).split():
                self.hyperctl("rm", pod, check=False)
        finally:
            self.process.terminate()
            self.process.wait(timeout=60)
            shutil.rmtree(self.run_root, ignore_errors=True)


def eventually(probe, what: str, timeout: float = 120.0):
    """probe()'s first truthy result; a guest service comes up on its own schedule."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)

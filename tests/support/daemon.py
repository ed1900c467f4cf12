"""A real hyperd for a test: its own state and run roots, driven through the real hyperctl.

The guest image cache is the machine's (built once by scripts/install, or on
first use), so tests do not rebuild it. Paths are short because unix socket
paths are limited to 108 bytes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from hypercontainer_plugins.images import busybox as busybox_image

HYPERCTL = [sys.executable, "-m", "hypercontainer.cli.main"]


def processes_matching(*needles: bytes) -> list[int]:
    """Processes whose command line holds every one of `needles`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if all(needle in cmdline for needle in needles):
            found.append(int(entry.name))
    return found


def qemu_pids(run_root: Path) -> list[int]:
    """qemu processes whose command line names this run root."""
    return processes_matching(b"qemu-system", str(run_root).encode())


class Hyperd:
    def __init__(self, config: str = "", env: dict[str, str] | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="hc", dir="/tmp"))
        self.state_root, self.run_root = self.root / "s", self.root / "r"
        self.config_file = self.root / "config.toml"
        self.config_file.write_text(
            f'state_root = "{self.state_root}"\nrun_root = "{self.run_root}"\n' + config
        )
        self.env = {**os.environ, **(env or {}), "HYPERCONTAINER_CONFIG": str(self.config_file)}
        for name in ("HYPERCONTAINER_STATE_ROOT", "HYPERCONTAINER_RUN_ROOT"):
            self.env.pop(name, None)
        self.process: subprocess.Popen | None = None

    @property
    def socket(self) -> Path:
        return self.run_root / "hyperd.sock"

    def start(self) -> Hyperd:
        log = open(self.root / "hyperd.log", "ab")  # noqa: SIM115 - the daemon's lifetime
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hypercontainer.api.server"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while not self.listening():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("hyperd did not start:\n" + self.log_text())
            time.sleep(0.05)
        return self

    def listening(self) -> bool:
        probe = socket.socket(socket.AF_UNIX)
        try:
            probe.connect(str(self.socket))
            return True
        except OSError:
            return False
        finally:
            probe.close()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(30)
        self.process = None

    def log_text(self) -> str:
        try:
            return (self.root / "hyperd.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def hyperctl(
        self, *args: str, check: bool = False, timeout: float = 300, stdin: str | None = None
    ) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [*HYPERCTL, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"hyperctl {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout}{result.stderr}\n--- hyperd log ---\n{self.log_text()}"
            )
        return result

    def api(self, method: str, path: str, body=None) -> object:
        """One API request through hyperctl's own client."""
        from hypercontainer.cli.client import Client

        return Client(str(self.config_file), autostart=False).request(method, path, body)

    def load_busybox(self) -> None:
        archive = self.root / "busybox.tar"
        busybox_image.write(archive)
        self.hyperctl("load", "-i", str(archive), check=True)

    def cleanup(self) -> None:
        """Remove every pod, stop the daemon, and check no VM outlived it."""
        if self.process and self.process.poll() is None:
            for pod in self.hyperctl("list", "-q").stdout.split():
                self.hyperctl("rm", pod)
        self.stop()
        leftovers = qemu_pids(self.run_root)
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)
        assert not leftovers, f"qemu processes outlived their pods: {leftovers}"


@contextlib.contextmanager
def busybox_hyperd(config: str = "") -> Iterator[Hyperd]:
    """A started hyperd holding the offline busybox image; cleaned up (pods, daemon) after."""
    daemon = Hyperd(config=config).start()
    try:
        daemon.load_busybox()
        yield daemon
    finally:
        daemon.cleanup()


def rows(text: str) -> list[list[str]]:
    """A hyperctl table's rows (without the header), split on whitespace."""
    return [line.split() for line in text.strip().splitlines()[1:]]


def wait_for(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    """Poll an external observation (another process's state) with a deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def announced_pod(text: str) -> str:
    """The pod id in `run -d`'s output: "POD id is <id>", then the time it took."""
    first, *rest = text.splitlines()
    assert first.startswith("POD id is "), text
    assert all(line.startswith("Time to run a POD is ") for line in rest), text
    return first.removeprefix("POD id is ")


def as_json(text: str):
    return json.loads(text)

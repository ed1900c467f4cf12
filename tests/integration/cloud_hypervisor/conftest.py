"""Fixtures for the Cloud Hypervisor contract tests: the stand-in VMM and its journal.

The stand-in (ch_standin.py) is run as the `cloud-hypervisor` binary through a
small executable wrapper, so the driver starts it exactly as it would start the
real VMM. Every request it receives is journalled; a test fails if any request
body did not validate against the spec.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypercontainer import config as hc_config
from hypercontainer import mounts
from hypercontainer.drivers import VMSpec

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ch_openapi import Spec

STANDIN = Path(__file__).resolve().parent / "ch_standin.py"


class Journal:
    """The requests the stand-in received, as it recorded them."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines()]

    def paths(self) -> list[str]:
        return [entry["path"] for entry in self.entries()]

    def body(self, path: str) -> dict:
        bodies = [json.loads(e["body"]) for e in self.entries() if e["path"] == path]
        assert bodies, f"no {path} request was made"
        return bodies[-1]

    def schema_errors(self) -> list[str]:
        return [f"{e['path']}: {err}" for e in self.entries() for err in e["schema_errors"]]


@pytest.fixture(scope="session")
def spec() -> Spec:
    return Spec()


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Short, because unix socket paths are limited to 107 bytes.
    path = Path(tempfile.mkdtemp(prefix="hc-ch-", dir="/tmp"))
    yield path
    mounts.unmount_all(str(path))  # the templates tmpfs the driver mounts in its cache root
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def journal(workdir: Path) -> Iterator[Journal]:
    journal = Journal(workdir / "journal.jsonl")
    yield journal
    assert journal.schema_errors() == [], "requests that break the API contract"


@pytest.fixture
def make_binary(workdir: Path, journal: Journal) -> Callable[..., Path]:
    """An executable that is the stand-in, with stand-in options baked in."""

    def make(*options: str, prefix: str = "", name: str = "cloud-hypervisor") -> Path:
        binary = workdir / "bin" / name
        binary.parent.mkdir(exist_ok=True)
        command = f"{sys.executable} {STANDIN} --journal {journal.path} {' '.join(options)}"
        binary.write_text(f'#!/bin/sh\nexec {prefix} {command} "$@"\n')
        binary.chmod(0o755)
        return binary

    return make


@pytest.fixture
def make_config(workdir: Path):
    def make(binary: Path | str, virtiofsd: str = "/nonexistent/virtiofsd", **extra):
        environ = {
            "HYPERCONTAINER_HYPERVISOR": "cloud-hypervisor",
            "HYPERCONTAINER_RUN_ROOT": str(workdir / "run"),
            "HYPERCONTAINER_STATE_ROOT": str(workdir / "state"),
            "HYPERCONTAINER_CACHE_ROOT": str(workdir / "cache"),
            "HYPERCONTAINER_CLOUD_HYPERVISOR__BINARY": str(binary),
            "HYPERCONTAINER_CLOUD_HYPERVISOR__VIRTIOFSD": virtiofsd,
            "HYPERCONTAINER_CLOUD_HYPERVISOR__STOP_TIMEOUT": "5",
        }
        environ.update(extra)
        return hc_config.load(path=None, environ=environ)

    return make


@pytest.fixture
def boot_files(workdir: Path) -> tuple[Path, Path]:
    """Stand-ins for the kernel and initrd: the stand-in VMM only opens them."""
    kernel, initrd = workdir / "vmlinuz", workdir / "initrd.img"
    kernel.write_bytes(b"not a kernel")
    initrd.write_bytes(b"not an initrd")
    return kernel, initrd


@pytest.fixture
def make_spec(workdir: Path, boot_files: tuple[Path, Path]) -> Callable[..., VMSpec]:
    def make(pod_id: str = "pod-1", **fields) -> VMSpec:
        run_dir = workdir / "run" / pod_id
        values = dict(
            pod_id=pod_id,
            vm_name=f"vm-{pod_id}",
            vcpus=2,
            memory_mb=256,
            kernel=boot_files[0],
            initrd=boot_files[1],
            kernel_args=["console=ttyS0", "quiet"],
            run_dir=run_dir,
            console_log=workdir / f"{pod_id}-console.log",
        )
        values.update(fields)
        return VMSpec(**values)

    return make


@pytest.fixture
def standin_api(make_binary, workdir: Path) -> Iterator[Path]:
    """A running stand-in VMM; yields its API socket."""
    socket_path = workdir / "api.sock"
    process = subprocess.Popen(
        [str(make_binary()), "--api-socket", f"path={socket_path}"],
        stdout=subprocess.PIPE,
        text=True,
    )
    # The stand-in says so once it listens.
    assert "API on" in process.stdout.readline()
    yield socket_path
    process.kill()
    process.wait()
    process.stdout.close()


@pytest.fixture
def processes(workdir: Path) -> Callable[[], list[int]]:
    """Pids of the processes started for this test: stand-in VMMs, virtiofsd (their
    command lines name the test's directory)."""

    def running() -> list[int]:
        pids = []
        for entry in os.listdir("/proc"):
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if entry.isdigit() and str(workdir).encode() in f.read():
                        pids.append(int(entry))
            except OSError:
                pass
        return pids

    return running


@pytest.fixture
def netns_with_tap():
    """A network namespace holding one tap device, removed afterwards."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2")
    name = f"hc-chtpl-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(
            ["ip", "-n", name, "tuntap", "add", "dev", "tap-pod1", "mode", "tap"], check=True
        )
        yield name, "tap-pod1"
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)

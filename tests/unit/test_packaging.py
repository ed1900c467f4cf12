"""The distribution as pip builds and installs it: namespaced packages only, the
console scripts, the driver entry points and the guest's non-Python files."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "core", "plugins")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Built from a copy: an in-tree build would leave build/ and egg-info in the clone.
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, source / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(out),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("hypercontainer-*.whl")
    return built


def test_the_wheel_holds_only_the_namespaced_packages(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {
        "hypercontainer",
        "hypercontainer_plugins",
    }
    assert "hypercontainer/guest/init" in names  # the guest's /init, not a Python file
    assert (
        "hypercontainer/shim/proto/github.com/containerd/containerd/runtime/v2/task/shim.proto"
    ) in names  # the shim compiles its protocol at first use


def test_the_wheel_declares_the_scripts_and_every_driver(wheel: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    (entry_points,) = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
    text = archive.read(entry_points).decode()
    for line in (
        "hyperctl = hypercontainer.cli.main:main",
        "hyperd = hypercontainer.api.server:main",
        "qemu = hypercontainer_plugins.hypervisors.qemu:QemuHypervisor",
        "cloud-hypervisor = ",
        "oci = ",
        "user = ",
        "bridge = ",
    ):
        assert line in text, line
    for group in ("hypercontainer.hypervisors", "hypercontainer.images", "hypercontainer.network"):
        assert f"[{group}]" in text


def test_installed_it_imports_as_hypercontainer_and_never_as_core(wheel: Path, tmp_path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--quiet",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    probe = (
        f"import sys; sys.path.insert(0, {str(target)!r})\n"
        "import importlib.util, hypercontainer, hypercontainer_plugins.network.user\n"
        "print(hypercontainer.__file__)\n"
        "print(importlib.util.find_spec('core'), importlib.util.find_spec('plugins'))"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", probe],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    first, second = result.stdout.splitlines()
    assert first.startswith(str(target))
    assert second == "None None"

"""What the built guest image holds, checked on the real artefacts.

The trimmed root filesystem is also run on the host (chroot): the guest's own
Python must import everything the agent declares, and crun must find all its
libraries, with nothing but what the initrd holds.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypercontainer.guest.image import GuestImage
from hypercontainer.guest.initrd import MODULES
from hypercontainer.guest.kernel import has_pvh_entry


def cpio_list(image: GuestImage, flags: str) -> list[str]:
    done = subprocess.run(
        ["cpio", flags, "--quiet"],
        input=gzip.decompress(image.initrd.read_bytes()),
        capture_output=True,
        check=True,
    )
    return done.stdout.decode().splitlines()


@pytest.fixture(scope="module")
def listing(guest_image: GuestImage) -> list[str]:
    """`cpio -itv` of the initrd: one line per entry, with type, owner and name."""
    return cpio_list(guest_image, "-itv")


@pytest.fixture(scope="module")
def entry_names(guest_image: GuestImage) -> set[str]:
    return set(cpio_list(guest_image, "-it"))


@pytest.fixture(scope="module")
def unpacked(guest_image: GuestImage, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("initrd")
    subprocess.run(
        ["cpio", "-id", "--quiet", "--no-absolute-filenames"],
        input=gzip.decompress(guest_image.initrd.read_bytes()),
        cwd=root,
        check=True,
    )
    return root


def test_everything_belongs_to_root(listing: list[str]) -> None:
    owners = {(line.split()[2], line.split()[3]) for line in listing}
    assert owners == {("root", "root")}


def test_the_guest_essentials_are_there(listing: list[str], entry_names: set[str]) -> None:
    for path in [
        "init",
        "bin/busybox",
        "bin/sh",
        "bin/switch_root",
        "usr/bin/python3",
        "usr/bin/python3.11",
        "usr/bin/crun",
        "hc/agent/__main__.py",
        "hc/agent/protocol.py",
        "usr/lib/python3.11/os.py",
        "etc/hc/modules",
    ]:
        assert path in entry_names, path
    console = next(line for line in listing if line.endswith(" dev/console"))
    assert console.startswith("c") and "5,   1" in console


def test_modules_are_listed_in_load_order_and_present(unpacked: Path) -> None:
    lines = [line.split() for line in (unpacked / "etc/hc/modules").read_text().splitlines()]
    order = [line[0] for line in lines]
    loaded = [Path(m).name.split(".ko")[0].replace("-", "_") for m in order]
    waits = {name: line[1:] for name, line in zip(loaded, lines, strict=True)}
    assert waits["virtio_pci"] == [] and waits["9p"] == [] and waits["overlay"] == []
    assert waits["ext4"] == ["0x0002"] and waits["virtio_blk"] == ["0x0002"]
    assert waits["vmw_vsock_virtio_transport"] == ["0x0013"]
    for wanted in MODULES:
        assert wanted in loaded, wanted
    for module in order:
        assert (unpacked / "lib/modules" / module).is_file()
    # dependencies first: virtio before virtio_pci, 9pnet before 9p, jbd2 before ext4
    for before, after in [("virtio", "virtio_pci"), ("9pnet", "9p"), ("jbd2", "ext4")]:
        assert loaded.index(before) < loaded.index(after)


def test_the_stdlib_is_trimmed_and_precompiled(unpacked: Path) -> None:
    stdlib = unpacked / "usr/lib/python3.11"
    assert not (stdlib / "email").exists() and not (stdlib / "asyncio").exists()
    sources = [p for p in stdlib.rglob("*.py")]
    assert sources
    for source in sources:
        compiled = source.parent / "__pycache__" / f"{source.stem}.cpython-311.pyc"
        assert compiled.is_file(), source
    agent = unpacked / "hc/agent"
    assert (agent / "__pycache__" / "protocol.cpython-311.pyc").is_file()


@pytest.mark.root
def test_the_guest_python_and_crun_run_from_the_initrd_alone(unpacked: Path) -> None:
    chroot = shutil.which("chroot")
    if os.geteuid() != 0 or chroot is None:
        pytest.skip("needs root for chroot")
    modules = sorted(
        f"agent.{p.stem}"
        for p in (unpacked / "hc/agent").glob("*.py")
        if p.stem not in ("__init__", "__main__")
    )
    imports = subprocess.run(
        [
            chroot,
            str(unpacked),
            "/bin/sh",
            "-c",
            f"cd /hc && /usr/bin/python3 -S -c 'import {', '.join(modules)}; print(\"ok\")'",
        ],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert imports.stdout.strip() == "ok", imports.stderr
    # crun re-executes itself through /proc, absent here: let its loader resolve it instead.
    crun = subprocess.run(
        [chroot, str(unpacked), "/lib64/ld-linux-x86-64.so.2", "--list", "/usr/bin/crun"],
        capture_output=True,
        text=True,
    )
    assert crun.returncode == 0 and "libseccomp" in crun.stdout, crun.stderr
    assert "not found" not in crun.stdout


def test_the_kernel_boots_through_its_pvh_entry(guest_image: GuestImage) -> None:
    assert has_pvh_entry(guest_image.kernel.read_bytes())


def test_describe_says_what_was_built(guest_image: GuestImage) -> None:
    info = guest_image.describe()
    assert info["kernel"] == str(guest_image.kernel)
    assert info["initrd_bytes"] == guest_image.initrd.stat().st_size
    assert any(name.startswith("linux-image-") for name in info["packages"])

"""Lays out the guest's root filesystem and archives it as the initrd.

Layout: busybox with its applets as links in /bin; /lib/modules/<release>/ with
the modules /init loads, listed in load order in /etc/hc/modules (some only when
the VM has the virtio device they drive); Debian's
python3.11 with a trimmed stdlib; crun; every shared library those need, at
the paths the host's loader gave; the agent as /hc/agent/; and /init.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..errors import DriverError
from . import cpio, libraries, python_runtime
from .modules import ModuleTree

ALWAYS = ["virtio_pci", "virtio_console", "9p", "9pnet_virtio", "virtio_net", "overlay"]
# Loaded only when the VM has such a virtio device (device IDs: virtio spec, "Device Types"):
# ext4 alone takes 0.6 s to load under TCG, and a QEMU pod has no disk.
WHEN_DEVICE = {
    "0x0002": ["virtio_blk", "ext4"],  # block device
    "0x0013": ["vsock", "vmw_vsock_virtio_transport"],  # socket device
    "0x001a": ["fuse", "virtiofs"],  # file system device (Cloud Hypervisor's shares)
}
MODULES = ALWAYS + [name for group in WHEN_DEVICE.values() for name in group]
BUSYBOX = Path("bin/busybox")
CRUN = Path("usr/bin/crun")
DIRECTORIES = ["dev", "proc", "sys", "run", "tmp", "mnt", "root", "newroot", "etc/hc", "sbin"]
DEVICES = {"dev/console": (5, 1), "dev/null": (1, 3)}  # open before devtmpfs is mounted


def _copy(source: Path, staging: Path, relative: Path | str) -> Path:
    """Copy a file (following links) to `relative` inside the staging tree."""
    target = staging / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target, follow_symlinks=True)
    return target


def add_busybox(packages: Path, staging: Path) -> None:
    busybox = _copy(packages / BUSYBOX, staging, BUSYBOX)
    applets = subprocess.run(
        [str(busybox), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        link = staging / "bin" / applet
        if applet != "busybox" and not link.exists():
            link.symlink_to("busybox")


def add_modules(kernel_tree: Path, release: str, staging: Path) -> list[str]:
    """Copy the modules and their dependencies; /etc/hc/modules lists them in load order,
    each followed by the virtio device ID it waits for, if any."""
    tree = ModuleTree(kernel_tree / "lib/modules" / release)
    lines: list[str] = []
    listed: set[Path] = set()
    for device, names in [("", ALWAYS), *WHEN_DEVICE.items()]:
        for path in tree.load_order(names):
            if path in listed:
                continue  # a dependency shared with an earlier group
            listed.add(path)
            relative = Path(release) / path.relative_to(tree.root)
            _copy(path, staging, Path("lib/modules") / relative)
            lines.append(f"{relative.as_posix()} {device}".strip())
    (staging / "etc/hc/modules").write_text("".join(f"{line}\n" for line in lines))
    return lines


def add_python(packages: Path, agent_dir: Path, staging: Path) -> list[Path]:
    """The interpreter and the stdlib files the agent loads, compiled; returns the .so files."""
    interpreter = python_runtime.INTERPRETER
    _copy(packages / interpreter, staging, interpreter)
    (staging / interpreter.parent / "python3").symlink_to(interpreter.name)
    (staging / python_runtime.STDLIB / "lib-dynload").mkdir(parents=True, exist_ok=True)
    sources = []
    binaries = [staging / interpreter]
    for relative in python_runtime.stdlib_files(packages, agent_dir):
        target = _copy(packages / relative, staging, relative)
        if relative.suffix == ".py":
            sources.append((target, "/" + relative.as_posix()))
        elif relative.suffix == ".so":
            binaries.append(target)
    python_runtime.compile_sources(packages, sources)
    return binaries


def add_agent(packages: Path, agent_dir: Path, staging: Path) -> None:
    target = staging / "hc" / agent_dir.name
    shutil.copytree(agent_dir, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    python_runtime.compile_sources(
        packages,
        [(p, "/" + p.relative_to(staging).as_posix()) for p in sorted(target.rglob("*.py"))],
    )


def add_libraries(binaries: list[Path], staging: Path) -> None:
    for library in libraries.needed(binaries):
        _copy(Path(library), staging, library.lstrip("/"))


def add_base(init_script: Path, staging: Path) -> None:
    for directory in DIRECTORIES:
        (staging / directory).mkdir(parents=True, exist_ok=True)
    (staging / "tmp").chmod(0o1777)
    init = _copy(init_script, staging, "init")
    init.chmod(0o755)
    (staging / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (staging / "etc/group").write_text("root:x:0:\n")


def build(
    *,
    packages: Path,
    kernel_tree: Path,
    release: str,
    agent_dir: Path,
    init_script: Path,
    staging: Path,
    destination: Path,
) -> dict[str, object]:
    """Assemble the tree in `staging` and write the initrd; returns what went in."""
    if not (agent_dir / "__main__.py").is_file():
        raise DriverError(f"{agent_dir} is not a runnable agent package (no __main__.py)")
    add_base(init_script, staging)
    add_busybox(packages, staging)
    modules = add_modules(kernel_tree, release, staging)
    binaries = add_python(packages, agent_dir, staging)
    _copy(packages / CRUN, staging, CRUN)
    add_agent(packages, agent_dir, staging)
    add_libraries(binaries + [staging / CRUN], staging)
    cpio.write(staging, destination, DEVICES)
    unpacked = sum(p.lstat().st_size for p in staging.rglob("*") if not p.is_symlink())
    return {"modules": modules, "unpacked_bytes": unpacked}

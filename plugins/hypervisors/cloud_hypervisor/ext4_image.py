"""Shares without virtiofsd: a copy of the directory in an ext4 disk image.

`mkfs.ext4 -d DIR` (e2fsprogs) fills a new file system from a directory
without mounting anything and without root. The image is a snapshot: the
guest sees the directory as it was when the image was built, and what the
guest writes never reaches the host. Images are sparse, so a generous size
costs little disk.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from hypercontainer.drivers import Share
from hypercontainer.errors import DriverError

BLOCK = 4096
MIB = 1024 * 1024


def find_mkfs() -> Path | None:
    found = shutil.which("mkfs.ext4") or shutil.which("mkfs.ext4", path="/usr/sbin:/sbin")
    return Path(found) if found else None


def measure(directory: Path) -> tuple[int, int]:
    """(bytes in whole blocks, number of inodes) of a tree, links not followed."""
    size, inodes = BLOCK, 1
    for root, dirs, files in os.walk(directory, followlinks=False):
        for name in dirs + files:
            st = os.lstat(os.path.join(root, name))
            size += -(-st.st_size // BLOCK) * BLOCK + BLOCK
            inodes += 1
    return size, inodes


def build(share: Share, image: Path) -> None:
    """Write an ext4 image holding a copy of share.host_path, labelled with the tag."""
    mkfs = find_mkfs()
    if mkfs is None:
        raise DriverError("mkfs.ext4 not found: install e2fsprogs (or virtiofsd)")
    if not share.host_path.is_dir():
        raise DriverError(f"share {share.tag}: {share.host_path} is not a directory")
    data, inodes = measure(share.host_path)
    size_kib = (2 * data + inodes * 512 + 16 * MIB) // 1024
    image.unlink(missing_ok=True)
    argv = [
        str(mkfs),
        "-q",
        "-F",
        "-t",
        "ext4",
        "-O",
        "^has_journal",
        "-N",
        str(inodes + inodes // 4 + 256),
        "-L",
        share.tag[:16],
        "-d",
        str(share.host_path),
        str(image),
        f"{size_kib}k",
    ]
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        image.unlink(missing_ok=True)
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise DriverError(
            f"share {share.tag}: mkfs.ext4 failed: {detail[-1] if detail else result.returncode}"
        )


def disk_config(share: Share, image: Path) -> dict[str, Any]:
    """The DiskConfig of a share's image; the guest finds it by its serial, the tag."""
    return {
        "path": str(image),
        "readonly": share.readonly,
        "id": f"disk-{share.tag}",
        "serial": share.tag,
    }

"""The root filesystem containerd hands over (its snapshot's mounts), mounted at the
bundle's `rootfs` as runc would, and unmounted when the task goes.

hyperd then binds that directory below the pod's share, where the guest sees it.
Overlay (the overlayfs snapshotter) and bind (native) mounts are supported.
"""

from __future__ import annotations

import os
from typing import Any

from .. import mounts
from .status import Code, RpcError

FLAGS = {
    "ro": mounts.MS_RDONLY,
    "nosuid": mounts.MS_NOSUID,
    "nodev": mounts.MS_NODEV,
    "noexec": mounts.MS_NOEXEC,
    "bind": mounts.MS_BIND,
    "rbind": mounts.MS_BIND | mounts.MS_REC,
}
IGNORED = {"rw", "suid", "dev", "exec", "private", "rprivate"}
MAX_DATA = 4095  # mount(2) reads at most one page of options


def rootfs_dir(bundle: str) -> str:
    return os.path.join(bundle, "rootfs")


def mount_rootfs(bundle: str, rootfs: list[Any], spec_root: str | None) -> str:
    """The task's root directory: containerd's mounts made at <bundle>/rootfs, or (none
    given) the directory the spec's root.path names."""
    if not rootfs:
        path = spec_root or "rootfs"
        return os.path.normpath(os.path.join(bundle, path))
    target = rootfs_dir(bundle)
    os.makedirs(target, exist_ok=True)
    try:
        for entry in rootfs:
            _mount(entry, target)
    except BaseException:
        unmount_rootfs(bundle)
        raise
    return target


def _mount(entry: Any, target: str) -> None:
    flags, data = 0, []
    for option in entry.options:
        if option in FLAGS:
            flags |= FLAGS[option]
        elif option not in IGNORED:
            data.append(option)
    text = ",".join(data)
    if len(text) > MAX_DATA:
        raise RpcError(
            Code.INVALID_ARGUMENT,
            f"rootfs mount options are longer than {MAX_DATA} bytes (too many layers)",
        )
    if entry.type == "bind" or flags & mounts.MS_BIND:
        mounts.mount(entry.source, target, None, flags | mounts.MS_BIND)
        if flags & mounts.MS_RDONLY:
            mounts.mount(None, target, None, mounts.MS_REMOUNT | mounts.MS_BIND | flags)
    elif entry.type == "overlay":
        mounts.mount("overlay", target, "overlay", flags, text)
    else:
        raise RpcError(
            Code.INVALID_ARGUMENT,
            f"rootfs mount type {entry.type[:40]!r} is not supported (overlay and bind are)",
        )


def unmount_rootfs(bundle: str) -> None:
    target = rootfs_dir(bundle)
    if os.path.isdir(target):
        mounts.unmount_all(target)

"""The pod's own share: host directories and files bind-mounted for its containers.

A running VM cannot be given another 9p export (QEMU cannot hot-add one), so every
pod boots with one more, `hc_pod`, exported read-write from
`<state_root>/pods/<pod>/share`; a container whose root filesystem is a host
directory (containerd's snapshot), and its bind mounts, are bind-mounted below it
when the container starts (`<container id>/rootfs`, `<container id>/binds/<n>`),
and the guest sees them there.

The guest writes into this directory, so hyperd trusts nothing in it: every path
below the share is walked one component at a time without following symbolic
links, and mounts are made and undone through file descriptors. A directory is
deleted only once nothing is mounted below it any more.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path

from . import hostpaths, mounts
from .drivers import Share
from .errors import HyperError
from .log import get_logger

POD_SHARE_TAG = "hc_pod"

log = get_logger()

_DIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class ShareError(HyperError):
    """Something in the pod share is not what hyperd made there."""


def rootfs_path(container_id: str) -> str:
    return f"{container_id}/rootfs"


def bind_path(container_id: str, index: int) -> str:
    return f"{container_id}/binds/{index}"


class PodShare:
    def __init__(self, root: Path, protected: Iterable[Path] = ()) -> None:
        self.root = root
        self.protected = list(protected)

    def share(self) -> Share:
        """The export, made if missing; several file systems appear below it."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        return Share(POD_SHARE_TAG, self.root, readonly=False, mounts_below=True)

    # -- containers -----------------------------------------------------------

    def attach(self, container_id: str, rootfs: str | None, binds: list[tuple[str, bool]]) -> None:
        """Mount the container's root directory and binds (source, read-only) below the
        share; what is mounted already (the container ran before) stays as it is."""
        if rootfs is not None:
            self._bind(rootfs, rootfs_path(container_id), readonly=False)
        for index, (source, readonly) in enumerate(binds):
            self._bind(source, bind_path(container_id, index), readonly)

    def detach(self, container_id: str) -> None:
        """Unmount and delete what the container had in the share."""
        self._release(self.root / container_id)

    def remove(self) -> None:
        """Unmount everything and delete the share (the pod is being removed)."""
        self._release(self.root)

    # -- mechanics ------------------------------------------------------------

    def _bind(self, source: str, relative: str, readonly: bool) -> None:
        target = str(self.root / relative)
        if target in mounts.mount_points():
            return
        with ExitStack() as fds:
            source_fd = os.open(source, os.O_PATH | os.O_CLOEXEC)
            fds.callback(os.close, source_fd)
            # Checked again as opened: the path may have changed since the container
            # was created.
            hostpaths.check(os.readlink(mounts.fd_path(source_fd)), "bind source", self.protected)
            is_dir = stat.S_ISDIR(os.fstat(source_fd).st_mode)
            parent, name = relative.rsplit("/", 1)
            parent_fd = self._walk(parent, create=True)
            fds.callback(os.close, parent_fd)
            self._make_target(parent_fd, name, is_dir)
            target_fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
            fds.callback(os.close, target_fd)
            mounts.mount(
                mounts.fd_path(source_fd),
                mounts.fd_path(target_fd),
                None,
                mounts.MS_BIND | mounts.MS_REC,
            )
            if readonly:  # on the host: a guest that wanted to write there cannot
                mounted_fd = os.open(
                    name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd
                )
                fds.callback(os.close, mounted_fd)
                mounts.mount(
                    None,
                    mounts.fd_path(mounted_fd),
                    None,
                    mounts.MS_REMOUNT | mounts.MS_BIND | mounts.MS_RDONLY,
                )

    @staticmethod
    def _make_target(parent_fd: int, name: str, is_dir: bool) -> None:
        try:
            if is_dir:
                os.mkdir(name, 0o755, dir_fd=parent_fd)
            else:
                os.close(
                    os.open(
                        name,
                        os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_WRONLY | os.O_CLOEXEC,
                        0o644,
                        dir_fd=parent_fd,
                    )
                )
        except FileExistsError:
            kind = os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode
            if stat.S_ISDIR(kind) if is_dir else stat.S_ISREG(kind):
                return  # left by an earlier start that was cut short
            raise ShareError(f"pod share: {name} was replaced by something else") from None

    def _walk(self, relative: str, create: bool) -> int:
        """An O_PATH descriptor of directory `relative` below the share, symlinks refused."""
        fd = os.open(self.root, _DIR)
        try:
            for part in relative.split("/"):
                if create:
                    try:
                        os.mkdir(part, 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass
                next_fd = os.open(part, _DIR, dir_fd=fd)
                os.close(fd)
                fd = next_fd
        except OSError as e:
            os.close(fd)
            raise ShareError(
                f"pod share: {relative} is not a directory hyperd made: {e.strerror}"
            ) from None
        return fd

    def _release(self, directory: Path) -> None:
        if not directory.exists():
            return
        for point in mounts.mounted_under(str(directory)):
            relative = os.path.relpath(point, self.root)
            try:
                fd = os.open(self.root, _DIR) if relative == "." else self._open_below(relative)
            except (OSError, ShareError) as e:
                log.error("pod share: mount point moved, left mounted", path=point, error=str(e))
                continue
            try:
                mounts.umount(mounts.fd_path(fd))
            except mounts.MountError as e:
                log.error("pod share: unmount failed", path=point, error=str(e))
            finally:
                os.close(fd)
        left = mounts.mounted_under(str(directory))
        if left:  # deleting now would delete the host's files through those mounts
            raise ShareError(f"pod share: {', '.join(left)} still mounted; not deleted")
        shutil.rmtree(directory, ignore_errors=True)

    def _open_below(self, relative: str) -> int:
        parent, _, name = relative.rpartition("/")
        parent_fd = self._walk(parent, create=False) if parent else os.open(self.root, _DIR)
        try:
            return os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
        finally:
            os.close(parent_fd)

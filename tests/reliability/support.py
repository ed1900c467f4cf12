"""Helpers of the reliability tests: a teardown that always leaves the machine clean, and
snapshots of directory trees for "nothing changed" checks."""

from __future__ import annotations

import os
import shutil
import signal
import stat
from collections.abc import Callable
from pathlib import Path

from tests.support.daemon import Hyperd, qemu_pids


def finish(daemon: Hyperd) -> None:
    """daemon.cleanup(); should that fail (a hung request), still leave no hyperd or QEMU."""
    try:
        daemon.cleanup()
    except BaseException:
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait(30)
        for pid in qemu_pids(daemon.run_root):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(daemon.root, ignore_errors=True)
        raise


def tree(root: Path, skip: Callable[[Path], bool] = lambda path: False) -> dict[str, tuple]:
    """Every entry under `root` (not following links): type, mode, owner, size, mtime,
    link count, link target.

    The snapshot a hostile input must leave unchanged outside the daemon's store.
    """
    entries: dict[str, tuple] = {}
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(directory)
        for name in (*dirnames, *filenames):
            path = base / name
            if skip(path):
                continue
            try:
                info = path.lstat()
            except FileNotFoundError:
                continue  # gone while walking: someone else's temporary file
            target = os.readlink(path) if stat.S_ISLNK(info.st_mode) else ""
            if stat.S_ISDIR(info.st_mode):  # a file made and removed again is no change
                size = mtime = links = 0
            else:
                size, mtime, links = info.st_size, info.st_mtime_ns, info.st_nlink
            entries[str(path.relative_to(root))] = (
                stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid,
                size, mtime, links, target,
            )
    return entries

"""Shared pieces of the reliability tests: daemons that always clean up, and host checks."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.daemon import Hyperd


@pytest.fixture
def daemons() -> Iterator[Callable[..., Hyperd]]:
    """Make started hyperds (Hyperd arguments); each is cleaned up after the test."""
    made: list[Hyperd] = []

    def make(config: str = "", busybox: bool = True, **kwargs) -> Hyperd:
        daemon = Hyperd(config=config, **kwargs)
        made.append(daemon)
        daemon.start()
        if busybox:
            daemon.load_busybox()
        return daemon

    yield make
    for daemon in made:
        daemon.cleanup()


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

"""kill -9 of hyperd in the middle of `hyperctl load -i ARCHIVE`.

Killed while the archive is being received, and while its layers are being
unpacked into the store. After the next start: the command ended with one line;
no half image is listed; nothing the cut load wrote is left (the staged archive,
the store's work in progress, blobs and layers no image names); and the same
load then works. (Cuts during `run`, `rm` and `stop`: the other test_rel_daemon_killed*.)
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.reliability.support import kill_when
from tests.support.daemon import HYPERCTL, Hyperd
from tests.support.imagebuild import bulky, write_archive

NAME = "docker.io/library/bulky:latest"


def entries(directory: Path) -> set[str]:
    """Every path below `directory`, relative to it."""
    return {str(p.relative_to(directory)) for p in directory.rglob("*")} if directory.exists() \
        else set()


def staged(daemon: Hyperd) -> bool:
    return any(p.stat().st_size for p in (daemon.state_root / "transfers").glob("*.tar"))


def unpacking(daemon: Hyperd) -> bool:
    return any((daemon.state_root / "images" / "tmp").glob("layer-*"))


POINTS: dict[str, Callable[[Hyperd], bool]] = {
    "archive being received": staged,
    "layers being unpacked": unpacking,
}


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    # Incompressible data, so that receiving and unpacking take long enough to be cut.
    path = tmp_path_factory.mktemp("archive") / "bulky.tar"
    return write_archive(path, {NAME: bulky(megabytes=96, layers=3)})


@pytest.mark.parametrize("point", list(POINTS))
def test_a_cut_load_leaves_nothing_and_the_next_load_works(busybox_daemon, archive, point):
    daemon, store = busybox_daemon, busybox_daemon.state_root / "images"
    before = {part: entries(store / part) for part in ("blobs", "layers")}
    command = [*HYPERCTL, "load", "-i", str(archive)]
    load = subprocess.Popen(command, env=daemon.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        kill_when(daemon, POINTS[point], load)
        out, err = load.communicate(timeout=120)
    finally:
        if load.poll() is None:
            load.kill()
    daemon.start()

    assert load.returncode == 1 and len(err.splitlines()) == 1, (out, err)
    assert err.startswith("hyperctl ERROR: "), err
    assert "bulky" not in daemon.hyperctl("images", check=True).stdout
    assert entries(daemon.state_root / "transfers") == set()
    assert entries(store / "tmp") == set()
    assert {part: entries(store / part) for part in before} == before

    daemon.hyperctl("load", "-i", str(archive), check=True)
    assert "bulky" in daemon.hyperctl("images", check=True).stdout
    daemon.hyperctl("rmi", NAME, check=True)
    assert {part: entries(store / part) for part in before} == before

"""Helpers of the reliability tests: a teardown that always leaves the machine clean,
snapshots of directory trees for "nothing changed" checks, a daemon's store read
from outside, to kill it at a chosen point, and small file systems to fill."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypercontainer import config as hc_config
from hypercontainer import mounts
from hypercontainer.guest.image import ensure_image

from tests.integration.network.hc_daemon import Daemon
from tests.integration.network.hc_netns import NetNs, host_network
from tests.support.daemon import HYPERCTL, Hyperd, processes_matching, qemu_pids
from tests.support.imagebuild import Built, write_layout
from tests.support.registry import Registry


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
                stat.S_IFMT(info.st_mode),
                stat.S_IMODE(info.st_mode),
                info.st_uid,
                info.st_gid,
                size,
                mtime,
                links,
                target,
            )
    return entries


BULKY = "docker.io/library/bulky:latest"  # what a module's `bulky_image` is named (conftest)

# A container that runs until it is stopped, and stops at once on SIGTERM.
SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; sleep 1000000 & wait"]
POLL = 0.005  # seconds between looks at another process's state: nothing to wait on


def recorded(daemon: Hyperd, table: str) -> list[dict]:
    """The records in the store, read as another process would."""
    try:
        with sqlite3.connect(
            f"file:{daemon.state_root / 'state.db'}?mode=ro", uri=True, timeout=5
        ) as db:
            return [json.loads(row[0]) for row in db.execute(f"SELECT record FROM {table}")]
    except sqlite3.OperationalError:  # no database or table yet
        return []


def states(daemon: Hyperd, table: str) -> set[str]:
    return {record["state"] for record in recorded(daemon, table)}


def background(command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """`command` started, its output (text) kept for communicate()."""
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def reach(
    point: Callable[[], bool], command: subprocess.Popen | threading.Thread, poll: float = POLL
) -> None:
    """Return as soon as `point` holds, while `command` (a process or a thread making a
    request) is still under way; looking every `poll` seconds (a narrow point: less)."""
    deadline = time.monotonic() + 300
    while not point():
        if isinstance(command, threading.Thread):
            assert command.is_alive(), "the request finished before the point was reached"
        else:
            assert command.poll() is None, "the command finished before the point was reached"
        assert time.monotonic() < deadline, "the point was never reached"
        time.sleep(poll)


def kill_when(
    daemon: Hyperd,
    point: Callable[[Hyperd], bool],
    command: subprocess.Popen,
    poll: float = POLL,
) -> None:
    """kill -9 the daemon as soon as `point` holds, while `command` is still under way."""
    reach(lambda: point(daemon), command, poll)
    daemon.process.send_signal(signal.SIGKILL)
    daemon.process.wait(30)


def cut_short(
    daemon: Hyperd, args: list[str], point: Callable[[Hyperd], bool], poll: float = POLL
) -> subprocess.CompletedProcess:
    """Run `hyperctl ARGS`, kill -9 the daemon once `point` holds, and start it again.

    Returns what the cut command printed and how it exited.
    """
    command = [*HYPERCTL, *args]
    process = background(command, daemon.env)
    try:
        kill_when(daemon, point, process, poll)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    daemon.start()
    return subprocess.CompletedProcess(command, process.returncode, out, err)


@contextlib.contextmanager
def registry_with(workdir: Path, images: dict[str, Built]) -> Iterator[Registry]:
    """Debian's docker-registry on loopback holding `images` (by repository, tag `1`),
    pushed there by skopeo; stopped after the block."""
    registry = Registry.start(workdir)
    try:
        layout = write_layout(workdir / "layout", images)
        for repository in images:
            registry.push(layout, repository, f"{repository}:1")
        yield registry
    finally:
        registry.stop()


@contextlib.contextmanager
def small_filesystem(path: Path, megabytes: int) -> Iterator[Path]:
    """A tmpfs of `megabytes` mounted at `path` (made if need be) for the block: a disk
    that fills up. Needs root (pytest skips)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a file system needs root")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m,mode=0700", "hc-small", str(path)],
        check=True,
    )
    try:
        yield path
    finally:
        # Lazily: a VM's 9p export of it may still be closing.
        subprocess.run(["umount", "--lazy", str(path)], check=True)


def entries(directory: Path) -> set[str]:
    """Every path below `directory`, relative to it."""
    return (
        {str(p.relative_to(directory)) for p in directory.rglob("*")}
        if directory.exists()
        else set()
    )


def free_bytes(path: Path) -> int:
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize


@contextlib.contextmanager
def filled(filesystem: Path, leave: int = 0, databases: tuple[Path, ...] = ()) -> Iterator[None]:
    """`filesystem` with only `leave` bytes free during the block: a file of the test's
    takes the rest, and is removed after. The write-ahead logs of `databases` (SQLite,
    WAL) are emptied first, as a checkpoint would: without that, a write could reuse
    their space and a full disk would never be seen by them."""
    for database in databases:
        with contextlib.closing(sqlite3.connect(database, timeout=30)) as db:
            deadline = time.monotonic() + 30
            # busy while hyperd reads it at that moment: again, as a checkpoint would be
            while db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]:
                assert time.monotonic() < deadline, f"{database}: its log cannot be emptied"
                time.sleep(POLL)
    filler = filesystem / "hc-filler"
    assert free_bytes(filesystem) >= leave, f"{filesystem} has less than {leave} bytes free"
    try:
        subprocess.run(
            ["fallocate", "-l", str(free_bytes(filesystem) - leave), str(filler)], check=True
        )
        assert free_bytes(filesystem) <= leave
        yield
    finally:
        filler.unlink(missing_ok=True)


@contextlib.contextmanager
def bridged_daemon(workdir: Path, name: str) -> Iterator[tuple[Daemon, NetNs]]:
    """A hyperd on the bridge network, run inside a network namespace made for it (its
    bridge, taps and nftables rules live and die there); every pod is removed after,
    and the machine's own network must be as it was. Needs root (pytest skips)."""
    if os.geteuid() != 0:
        pytest.skip("the bridge network needs root")
    before = host_network()
    ns = NetNs.create(f"-reliability-{name}")
    hyperd = None
    try:
        hyperd = Daemon(workdir, "bridge", ns.name)
        yield hyperd, ns
    finally:
        if hyperd is not None:
            hyperd.stop()
            assert qemu_pids(hyperd.run_root) == []
        ns.delete()
        assert host_network() == before


@contextlib.contextmanager
def templating_daemon() -> Iterator[Hyperd]:
    """A started hyperd with the busybox image whose VM templates are its own: a cache
    root of its own (its templates tmpfs mounted there by hyperd, unmounted after), the
    machine's guest image named in [guest] (not rebuilt), TCG (no KVM probe)."""
    image = ensure_image(hc_config.load(environ={}))
    cache = Path(tempfile.mkdtemp(prefix="hcc", dir="/tmp"))
    daemon = Hyperd(
        config=f'cache_root = "{cache}"\n'
        f'[guest]\nkernel = "{image.kernel}"\ninitrd = "{image.initrd}"\n'
        '[qemu]\naccelerator = "tcg"\n'
    )
    try:
        daemon.start()
        daemon.load_busybox()
        yield daemon
    finally:
        try:
            finish(daemon)
        finally:
            mounts.unmount_all(str(cache))
            shutil.rmtree(cache, ignore_errors=True)


def template_qemu_pids(daemon: Hyperd) -> list[int]:
    """The QEMU processes of template guests this daemon boots (or booted)."""
    return processes_matching(b"qemu-system", str(daemon.run_root / "templates").encode())


def templates_dir(daemon: Hyperd) -> Path:
    return hc_config.load(daemon.config_file).cache_root / "templates"

"""A disk that fills: during `hyperctl pull`, `load` and `save`, under a container
writing to a volume, and under hyperd's state database.

The full disks are small tmpfs file systems the test mounts and unmounts itself:
hyperd's state root (which holds the image store, the archives hyperd stages and
the state database), the directory `save` writes to, a volume's source. A file of
the test's takes what should not be free, and goes again to free the space.

Each refusal must be one line saying which store has no space left, exit code 1,
and leave the store as it was: no half image listed, nothing in the store's
`tmp/`, no staged archive, no blob or layer no image names, no half-made pod or
container; an image already there keeps working, running pods keep running and
hyperd keeps answering. Once the space is back the same command works.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.support import (
    BULKY,
    SLEEPER,
    entries,
    filled,
    finish,
    small_filesystem,
)
from tests.support.daemon import Hyperd, qemu_pids, rows, wait_for
from tests.support.imagebuild import bulky
from tests.support.registry import Registry

MiB = 2**20
# The state root's size; the image is larger than what is left free in each case,
# and fits once that space is given back.
STATE_ROOT_MB = 128
IMAGE_MB = 24


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    """A hyperd whose state root is a small file system of its own, holding busybox."""
    hyperd = Hyperd()
    with small_filesystem(hyperd.state_root, STATE_ROOT_MB):
        try:
            hyperd.start()
            hyperd.load_busybox()
            yield hyperd
        finally:
            finish(hyperd)
    shutil.rmtree(hyperd.root)  # what finish() could not: the mount point


@pytest.fixture(scope="module")
def bulky_image():
    return bulky(megabytes=IMAGE_MB, layers=2)


def full(daemon: Hyperd, leave: int = 0):
    """The daemon's state root with `leave` bytes free, its databases' logs emptied."""
    databases = (daemon.state_root / "state.db", daemon.state_root / "images" / "index.db")
    return filled(daemon.state_root, leave, databases)


def contents(daemon: Hyperd) -> dict[str, object]:
    """What a refused command must leave as it was: the image store, the staged archives,
    the pods' directories, and what hyperctl lists."""
    store = daemon.state_root / "images"
    return {
        "blobs": entries(store / "blobs"),
        "layers": entries(store / "layers"),
        "tmp": entries(store / "tmp"),
        "transfers": entries(daemon.state_root / "transfers"),
        "pods": entries(daemon.state_root / "pods"),
        "images": daemon.hyperctl("images", check=True).stdout,
        "list": daemon.hyperctl("list", check=True).stdout,
        "containers": daemon.hyperctl("list", "container", check=True).stdout,
    }


def assert_no_space(result: subprocess.CompletedProcess, where: Path) -> None:
    """One line saying there is no space left, naming a directory under `where`."""
    assert result.returncode == 1, result
    assert len(result.stderr.splitlines()) == 1, result
    line = result.stderr.strip()
    named = rf"hyperctl ERROR: .*no space left on [^(]*\({re.escape(str(where))}[^)]*\)"
    assert re.match(named, line), line
    assert "Errno" not in line and "internal error" not in line, line


def assert_no_traceback(daemon: Hyperd) -> None:
    """hyperd logged no internal error, nor any other traceback: a full disk is expected."""
    log = (daemon.root / "hyperd.log").read_text(errors="replace")
    assert "Traceback" not in log and '"internal error"' not in log, daemon.log_text()


def assert_busybox_works(daemon: Hyperd) -> None:
    image = daemon.api("GET", "/images/busybox")
    assert isinstance(image, dict) and image["reference"] == "docker.io/library/busybox:latest"


@pytest.mark.registry
def test_a_pull_bigger_than_the_free_space(daemon, bulky_registry):
    reference = f"{bulky_registry.address}/bulky:1"
    before = contents(daemon)
    # The blobs fit, the blobs and their unpacked layers do not.
    with full(daemon, leave=(IMAGE_MB + 8) * MiB):
        pulled = daemon.hyperctl("pull", reference)
        assert_no_space(pulled, daemon.state_root / "images")
        assert contents(daemon) == before
        assert_busybox_works(daemon)

    daemon.hyperctl("pull", reference, check=True)
    assert "bulky" in daemon.hyperctl("images", check=True).stdout
    daemon.hyperctl("rmi", reference, check=True)
    assert contents(daemon) == before
    assert_no_traceback(daemon)


@pytest.mark.parametrize(
    "leave",
    [
        pytest.param((IMAGE_MB - 8) * MiB, id="the archive does not fit"),
        pytest.param((IMAGE_MB + 16) * MiB, id="the archive fits, its layers do not"),
    ],
)
def test_a_load_bigger_than_the_free_space(daemon, bulky_archive, leave):
    before = contents(daemon)
    with full(daemon, leave):
        loaded = daemon.hyperctl("load", "-i", str(bulky_archive))
        assert_no_space(loaded, daemon.state_root)
        assert loaded.stderr.startswith(f"hyperctl ERROR: {bulky_archive}: "), loaded
        assert contents(daemon) == before
        assert_busybox_works(daemon)

    daemon.hyperctl("load", "-i", str(bulky_archive), check=True)
    assert "bulky" in daemon.hyperctl("images", check=True).stdout
    daemon.hyperctl("rmi", BULKY, check=True)
    assert contents(daemon) == before
    assert_no_traceback(daemon)


def test_a_save_to_a_full_file_system(daemon, tmp_path):
    before = contents(daemon)
    # busybox's archive is about 1 MiB
    with small_filesystem(tmp_path / "out", megabytes=4) as out, filled(out, leave=256 * 2**10):
        target = out / "busybox.tar"
        saved = daemon.hyperctl("save", "-o", str(target), "busybox")
        assert saved.returncode == 1 and len(saved.stderr.splitlines()) == 1, saved
        assert saved.stderr == f"hyperctl ERROR: cannot write {target}: No space left on device\n"
        assert entries(out) == {"hc-filler"}  # the partial archive went
    assert contents(daemon) == before

    # hyperd stages the archive in its state root before it sends it
    target = tmp_path / "busybox.tar"
    with full(daemon):
        saved = daemon.hyperctl("save", "-o", str(target), "busybox")
        assert_no_space(saved, daemon.state_root)
        assert list(tmp_path.glob("busybox.tar*")) == []  # nor its .partial
        assert contents(daemon) == before
    daemon.hyperctl("save", "-o", str(target), "busybox", check=True)
    assert [p.name for p in tmp_path.glob("busybox.tar*")] == ["busybox.tar"]
    assert contents(daemon) == before
    assert_no_traceback(daemon)


def test_a_tag_or_a_removal_on_a_full_state_root(daemon):
    daemon.hyperctl("tag", "busybox", "spare:1", check=True)
    before = contents(daemon)
    with full(daemon):
        for command in (["tag", "busybox", "other:1"], ["rmi", "spare:1"]):
            refused = daemon.hyperctl(*command)
            assert_no_space(refused, daemon.state_root / "images")
            assert contents(daemon) == before
    daemon.hyperctl("rmi", "spare:1", check=True)
    assert_no_traceback(daemon)


@pytest.mark.registry
def test_a_login_on_a_full_state_root(daemon, tmp_path):
    registry = Registry.start(tmp_path / "registry", auth="htpasswd")
    try:
        login = ["login", "-u", registry.username, "-p", registry.password, registry.address]
        credentials = daemon.state_root / "images" / "auth.json"
        with full(daemon):
            refused = daemon.hyperctl(*login)
            assert_no_space(refused, daemon.state_root / "images")
            assert not credentials.exists()
        assert daemon.hyperctl(*login, check=True).stdout == "Login Succeeded\n"
        with full(daemon):
            refused = daemon.hyperctl("logout", registry.address)
            assert_no_space(refused, daemon.state_root / "images")
        assert registry.address in credentials.read_text()  # still logged in
        daemon.hyperctl("logout", registry.address, check=True)
        assert registry.address not in credentials.read_text()
        assert_no_traceback(daemon)
    finally:
        registry.stop()


def test_hyperd_starting_on_a_full_state_root_says_so_and_starts_once_there_is_space():
    hyperd = Hyperd()
    try:
        with small_filesystem(hyperd.state_root, 16) as state_root:
            with filled(state_root):
                started = subprocess.run(
                    [sys.executable, "-m", "hypercontainer.api.server"],
                    env=hyperd.env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert started.returncode == 1, started
                assert len(started.stderr.splitlines()) == 1, started
                pattern = rf"hyperd: .*no space left on .* \({re.escape(str(state_root))}.*\)\n"
                assert re.fullmatch(pattern, started.stderr), started.stderr
            hyperd.start()
            hyperd.load_busybox()
            finish(hyperd)
    finally:
        shutil.rmtree(hyperd.root, ignore_errors=True)


@pytest.mark.vm
def test_a_run_on_a_full_run_root_is_one_line_and_leaves_nothing():
    hyperd = Hyperd()
    try:
        with small_filesystem(hyperd.run_root, 16) as run_root:
            hyperd.start()
            hyperd.load_busybox()
            with filled(run_root):
                refused = hyperd.hyperctl("run", "-d", "--name", "cramped", "busybox", *SLEEPER)
                assert refused.stdout == "POD id is cramped\n", refused  # made, then undone
                assert_no_space(refused, run_root)
                assert rows(hyperd.hyperctl("list", check=True).stdout) == []
                assert entries(run_root / "pods") == set() and qemu_pids(run_root) == []
                assert entries(hyperd.state_root / "pods") == set()
            hyperd.hyperctl("run", "-d", "--name", "cramped", "busybox", *SLEEPER, check=True)
            assert_running(hyperd, {"cramped"})
            assert_no_traceback(hyperd)
            finish(hyperd)
    finally:
        shutil.rmtree(hyperd.root, ignore_errors=True)


@pytest.fixture(scope="module")
def steady(daemon):
    """A running pod of one container that waits, for the module's later tests."""
    daemon.hyperctl("run", "-d", "--name", "steady", "busybox", *SLEEPER, check=True)
    yield "steady"
    daemon.hyperctl("rm", "steady")


@pytest.mark.vm
def test_a_container_filling_its_volume_sees_it_and_the_rest_goes_on(daemon, steady, tmp_path):
    with small_filesystem(tmp_path / "volume", megabytes=8) as volume:
        try:
            daemon.hyperctl(
                "run", "-d", "--name", "writer", "-v", f"{volume}:/data", "busybox", *SLEEPER,
                check=True,
            )  # fmt: skip
            # The container sees its own file system fill, in its own words.
            fill = daemon.hyperctl(
                "exec", "writer", "dd", "if=/dev/zero", "of=/data/fill", "bs=1M", "count=16"
            )
            assert fill.returncode != 0, fill
            assert "No space left on device" in fill.stdout + fill.stderr, fill
            assert (volume / "fill").stat().st_size <= 8 * MiB
            assert_running(daemon, {steady, "writer"})
            alive = daemon.hyperctl("exec", steady, "echo", "alive", check=True)
            assert alive.stdout == "alive\n"
            # and can free it again
            daemon.hyperctl("exec", "writer", "rm", "/data/fill", check=True)
            written = daemon.hyperctl(
                "exec", "writer", "dd", "if=/dev/zero", "of=/data/fill", "bs=1M", "count=4"
            )
            assert written.returncode == 0, written
            assert (volume / "fill").stat().st_size == 4 * MiB
        finally:
            daemon.hyperctl("rm", "writer")
    assert_running(daemon, {steady})
    assert_no_traceback(daemon)


@pytest.mark.vm
def test_a_container_filling_its_own_root_sees_it_and_its_pod_goes_on(daemon):
    try:
        daemon.hyperctl("run", "-d", "--name", "filler", "busybox", *SLEEPER, check=True)
        fill = daemon.hyperctl("exec", "filler", "dd", "if=/dev/zero", "of=/fill", "bs=1M")
        assert fill.returncode != 0, fill
        assert "No space left on device" in fill.stdout + fill.stderr, fill
        alive = daemon.hyperctl("exec", "filler", "echo", "alive", check=True)
        assert alive.stdout == "alive\n"
    finally:
        daemon.hyperctl("rm", "filler")


@pytest.mark.vm
def test_a_full_state_root_refuses_new_state_and_what_runs_goes_on(daemon, steady):
    daemon.hyperctl("create", "-c", "--name", "brief", steady, "busybox", *SLEEPER, check=True)
    daemon.hyperctl("start", "-c", "brief", check=True)
    before = contents(daemon)
    with full(daemon):
        for command in (
            ["run", "-d", "--name", "crowded", "busybox", *SLEEPER],
            ["create", "-c", "--name", "extra", steady, "busybox", *SLEEPER],
            ["stop", steady],  # recorded before anything is done: not begun
            ["rm", steady],
        ):
            refused = daemon.hyperctl(*command)
            assert_no_space(refused, daemon.state_root)
            assert contents(daemon) == before
        assert_running(daemon, {steady})
        alive = daemon.hyperctl("exec", steady, "echo", "alive", check=True)
        assert alive.stdout == "alive\n"

        # Output and an exit hyperd has no room to record while they happen.
        daemon.hyperctl("exec", steady, "sh", "-c", f"{LINE} > /proc/1/fd/1", check=True)
        daemon.hyperctl("exec", "brief", "kill", "-TERM", "1")  # may end with its pid space
        wait_for(lambda: said(daemon, "container output not logged"), what="the output dropped")
        wait_for(lambda: said(daemon, "container exit not recorded"), what="the exit unrecorded")
        assert container_states(daemon)["brief"] == "running"  # as far as the store knows

    # The exit is recorded once there is space; the log lost the output whole.
    wait_for(lambda: container_states(daemon)["brief"] == "succeeded", what="the exit recorded")
    daemon.hyperctl("exec", steady, "sh", "-c", "echo after > /proc/1/fd/1", check=True)
    wait_for(lambda: daemon.hyperctl("logs", steady, check=True).stdout == "after\n")
    assert_running(daemon, {steady})
    created = daemon.hyperctl(
        "create", "-c", "--name", "extra", steady, "busybox", *SLEEPER, check=True
    )
    assert created.stdout.startswith("Container ID is "), created
    assert_no_traceback(daemon)


# 64 KiB on one line: more than a file's last page can still take on a full disk
LINE = "head -c 65536 /dev/zero | tr '\\0' x"


def said(daemon: Hyperd, event: str) -> bool:
    return f'"event": "{event}' in (daemon.root / "hyperd.log").read_text(errors="replace")


def container_states(daemon: Hyperd) -> dict[str, str]:
    return {row[1]: row[3] for row in rows(daemon.hyperctl("list", "container", check=True).stdout)}


def assert_running(daemon: Hyperd, pods: set[str]) -> None:
    listed = {row[1]: row[3] for row in rows(daemon.hyperctl("list", check=True).stdout)}
    assert listed == dict.fromkeys(pods, "running"), listed

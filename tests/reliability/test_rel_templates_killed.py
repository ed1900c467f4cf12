"""kill -9 while a VM template is made: of hyperd, and of the template guest's QEMU.

The first pod of a shape makes its template: a guest booted with its RAM on a file
in the daemon's templates tmpfs, saved once its agent waits. The daemon here has
templates of its own (tests/reliability/support.py: templating_daemon), so what
the test finds in its templates directory is only what it made.

- hyperd killed while the template guest boots (its QEMU up, no state saved yet):
  after the next start no template QEMU and no half-made template directory is
  left, the cut `run` left no pod, the next pod makes a fresh template and starts
  from it, and `hyperctl info` lists that one template.
- the template guest's QEMU killed: the pod that asked for the template starts
  anyway (booted), and nothing of the template is left behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.reliability.support import (
    POLL,
    SLEEPER,
    background,
    cut_short,
    reach,
    states,
    template_qemu_pids,
    templates_dir,
    templating_daemon,
)
from tests.support.daemon import HYPERCTL, Hyperd, announced_pod, processes_matching, qemu_pids

pytestmark = pytest.mark.vm


@pytest.fixture(scope="module")
def daemon():
    with templating_daemon() as hyperd:
        yield hyperd


def half_made(daemon: Hyperd) -> list[str]:
    """Template directories being made (or left by a maker that died)."""
    root = templates_dir(daemon)
    return sorted(p.name for p in root.glob("*.making-*")) if root.is_dir() else []


def template_guest(daemon: Hyperd) -> int | None:
    """The pid of the template guest's QEMU once it has set up the VM: the process its
    pid file names, the QEMU that daemonized it gone (so the guest boots)."""
    for pidfile in (daemon.run_root / "templates").glob("*/*/qemu.pid"):
        with contextlib.suppress(OSError, ValueError):
            if [pid := int(pidfile.read_text())] == template_qemu_pids(daemon):
                return pid
    return None


def template_booting(daemon: Hyperd) -> bool:
    """The point: the template guest's QEMU runs and its state is not saved yet."""
    making = [templates_dir(daemon) / name for name in half_made(daemon)]
    return template_guest(daemon) is not None and any(
        (d / "memory").exists() and not (d / "state").exists() for d in making
    )


def state_saved(daemon: Hyperd) -> bool:
    """The point: the template's device state is written (or being written), the
    template not in place yet."""
    return any((templates_dir(daemon) / name / "state").exists() for name in half_made(daemon))


def templates_of(daemon: Hyperd, memory_mb: int) -> list[dict]:
    """What `hyperctl info` lists of the templates of this shape (its memory)."""
    return [t for t in daemon.api("GET", "/info")["templates"] if t["memory_mb"] == memory_mb]


# A shape (its memory) for each: its first pod makes its template; how often to look
# (the state file exists some 20 ms before the template is renamed into place).
MAKING = {
    "its guest booting": (128, template_booting, POLL),
    "its state saved, the template not in place yet": (192, state_saved, 0.0005),
}


def pod(daemon: Hyperd, ref: str) -> dict:
    return daemon.api("GET", f"/pods/{ref}")


def run_detached(daemon: Hyperd, *options: str) -> str:
    done = daemon.hyperctl("run", "-d", *options, "busybox", *SLEEPER, check=True)
    return announced_pod(done.stdout)


def remove_all(daemon: Hyperd) -> None:
    for ref in daemon.hyperctl("list", "-q").stdout.split():
        daemon.hyperctl("rm", ref, check=True)
    assert qemu_pids(daemon.run_root) == []


@pytest.mark.parametrize("point", list(MAKING))
def test_hyperd_killed_while_it_makes_a_template(daemon: Hyperd, point: str) -> None:
    memory, reached, poll = MAKING[point]
    shape = ("--memory", str(memory))
    run = cut_short(daemon, ["run", "-d", *shape, "busybox", *SLEEPER], reached, poll)
    try:
        assert run.returncode == 1 and len(run.stderr.splitlines()) == 1, run
        assert run.stderr.startswith("hyperctl ERROR: "), run
        # What the next start found: the dead maker's guest stopped, its directory gone
        # (it held the guest's RAM in the tmpfs), the cut run's pod removed.
        assert template_qemu_pids(daemon) == []
        assert half_made(daemon) == []
        assert daemon.api("GET", "/pods") == []
        assert templates_of(daemon, memory) == []

        first = run_detached(daemon, *shape)
        key = pod(daemon, first)["vm"]["template"]  # restored from a template made now
        second = run_detached(daemon, *shape)
        assert pod(daemon, second)["vm"]["template"] == key
        assert daemon.hyperctl("exec", second, "echo", "cloned", check=True).stdout == "cloned\n"
        (template,) = templates_of(daemon, memory)
        assert template["key"] == key and template["hits"] == 2
        info = daemon.hyperctl("info", check=True).stdout.splitlines()
        (line,) = [line for line in info if f" {memory} MB," in line]  # one of the shape
        assert line.startswith(f"  {key}: ") and line.endswith(", hits 2"), line
        assert half_made(daemon) == [] and (templates_dir(daemon) / key).is_dir()
        assert {"memory", "state", "meta.json"} <= {
            p.name for p in (templates_dir(daemon) / key).iterdir()
        }
        assert template_qemu_pids(daemon) == []
    finally:
        remove_all(daemon)


def booted_despite(daemon: Hyperd, options: list[str], victim: Callable[[], int | None]) -> str:
    """`hyperctl run -d OPTIONS`, the QEMU `victim()` names killed -9 as soon as there
    is one; the pod must start all the same, booted. Its id."""
    run = background([*HYPERCTL, "run", "-d", *options, "busybox", *SLEEPER], daemon.env)
    found: list[int] = []

    def spotted() -> bool:
        # Killed the moment it is seen: looking again could find the restore over.
        pid = victim()
        found.extend([pid] if pid is not None else [])
        return bool(found)

    try:
        reach(spotted, run)
        os.kill(found[0], signal.SIGKILL)
        out, err = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, (out, err, daemon.log_text())
    # The VM's end was seen at once, not waited out (the guest's boot timeout, 120 s).
    fallbacks = [
        line
        for line in (daemon.root / "hyperd.log").read_text().splitlines()
        if "booting it" in line or "boot cold" in line
    ]
    assert fallbacks and not [line for line in fallbacks if " within " in line], fallbacks
    ref = announced_pod(out)
    assert "template" not in pod(daemon, ref)["vm"]  # booted instead
    assert daemon.hyperctl("exec", ref, "echo", "booted", check=True).stdout == "booted\n"
    assert qemu_pids(daemon.run_root) == [pod(daemon, ref)["vm"]["pid"]]
    assert template_qemu_pids(daemon) == [] and half_made(daemon) == []
    return ref


def test_the_template_guest_killed_still_starts_the_pod(daemon: Hyperd) -> None:
    # Its own shape (256 MB): no template of it is made or being made.
    before = {t["key"] for t in daemon.api("GET", "/info")["templates"]}
    try:
        booted_despite(
            daemon,
            ["--memory", "256"],
            lambda: template_guest(daemon) if template_booting(daemon) else None,
        )
        assert {t["key"] for t in daemon.api("GET", "/info")["templates"]} == before
        assert not list(Path(daemon.run_root / "templates").glob("*/*"))
    finally:
        remove_all(daemon)


def restoring_clone(daemon: Hyperd) -> int | None:
    """The pid of a pod's QEMU started from a template, set up (the QEMU that daemonized
    it gone), while its pod is not running yet: its device state loading, or its agent
    not answering yet."""
    if states(daemon, "pods") != {"pending"}:
        return None
    for pidfile in (daemon.run_root / "pods").glob("*/qemu.pid"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(pidfile.read_text())
            alone = processes_matching(b"qemu-system", str(pidfile.parent).encode()) == [pid]
            if alone and b"-incoming" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"):
                return pid
    return None


def test_a_clone_s_qemu_killed_while_it_restores_still_starts_the_pod(daemon: Hyperd) -> None:
    daemon.hyperctl("rm", run_detached(daemon), check=True)  # the shape has a template
    try:
        booted_despite(daemon, [], lambda: restoring_clone(daemon))
        # The shape's pods are still restored from a template (the one that failed a
        # clone is dropped: a new one is made).
        assert pod(daemon, run_detached(daemon))["vm"].get("template")
        assert len(templates_of(daemon, 128)) == 1
    finally:
        remove_all(daemon)

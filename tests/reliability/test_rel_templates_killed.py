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
from pathlib import Path

import pytest

from tests.reliability.support import (
    SLEEPER,
    background,
    cut_short,
    reach,
    template_qemu_pids,
    templates_dir,
    templating_daemon,
)
from tests.support.daemon import HYPERCTL, Hyperd, announced_pod, qemu_pids

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
    """The pid of the template guest's QEMU, once it has set up the VM (its pid file)."""
    for pidfile in (daemon.run_root / "templates").glob("*/*/qemu.pid"):
        with contextlib.suppress(OSError, ValueError):
            if (pid := int(pidfile.read_text())) in template_qemu_pids(daemon):
                return pid
    return None


def template_booting(daemon: Hyperd) -> bool:
    """The point: the template guest's QEMU runs and its state is not saved yet."""
    making = [templates_dir(daemon) / name for name in half_made(daemon)]
    return template_guest(daemon) is not None and any(
        (d / "memory").exists() and not (d / "state").exists() for d in making
    )


def pod(daemon: Hyperd, ref: str) -> dict:
    return daemon.api("GET", f"/pods/{ref}")


def run_detached(daemon: Hyperd, *options: str) -> str:
    done = daemon.hyperctl("run", "-d", *options, "busybox", *SLEEPER, check=True)
    return announced_pod(done.stdout)


def remove_all(daemon: Hyperd) -> None:
    for ref in daemon.hyperctl("list", "-q").stdout.split():
        daemon.hyperctl("rm", ref, check=True)
    assert qemu_pids(daemon.run_root) == []


def test_hyperd_killed_while_it_makes_a_template(daemon: Hyperd) -> None:
    run = cut_short(daemon, ["run", "-d", "busybox", *SLEEPER], template_booting)
    try:
        assert run.returncode == 1 and len(run.stderr.splitlines()) == 1, run
        assert run.stderr.startswith("hyperctl ERROR: "), run
        # What the next start found: the dead maker's guest stopped, its directory gone
        # (it held the guest's RAM in the tmpfs), the cut run's pod removed.
        assert template_qemu_pids(daemon) == []
        assert half_made(daemon) == []
        assert daemon.api("GET", "/pods") == []
        assert daemon.api("GET", "/info")["templates"] == []

        first = run_detached(daemon)
        key = pod(daemon, first)["vm"]["template"]  # restored from a template made now
        second = run_detached(daemon)
        assert pod(daemon, second)["vm"]["template"] == key
        assert daemon.hyperctl("exec", second, "echo", "cloned", check=True).stdout == "cloned\n"
        (template,) = daemon.api("GET", "/info")["templates"]
        assert template["key"] == key and template["hits"] == 2
        assert sorted(p.name for p in templates_dir(daemon).iterdir()) == [key]
        assert {"memory", "state", "meta.json"} <= {
            p.name for p in (templates_dir(daemon) / key).iterdir()
        }
        assert template_qemu_pids(daemon) == []
    finally:
        remove_all(daemon)


def test_the_template_guest_killed_still_starts_the_pod(daemon: Hyperd) -> None:
    # Its own shape (256 MB): the module's other test made the 128 MB one.
    before = {t["key"] for t in daemon.api("GET", "/info")["templates"]}
    run = background([*HYPERCTL, "run", "-d", "--memory", "256", "busybox", *SLEEPER], daemon.env)
    try:
        reach(lambda: template_booting(daemon), run)
        maker = template_guest(daemon)
        assert maker is not None
        os.kill(maker, signal.SIGKILL)
        out, err = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
    try:
        assert run.returncode == 0, (out, err, daemon.log_text())
        ref = announced_pod(out)
        assert "template" not in pod(daemon, ref)["vm"]  # booted instead
        assert daemon.hyperctl("exec", ref, "echo", "booted", check=True).stdout == "booted\n"
        assert template_qemu_pids(daemon) == []
        assert half_made(daemon) == []
        assert {t["key"] for t in daemon.api("GET", "/info")["templates"]} == before
        assert not list(Path(daemon.run_root / "templates").glob("*/*"))
    finally:
        remove_all(daemon)

"""kill -9 of hyperd in the middle of `hyperctl run -d`, at several points of the boot.

After the next start there must be either a running pod (with its container
running) or none, never an orphaned QEMU, never a record without what it
describes (a run directory of no pod, a VM no record names, a container of
no pod). Each point is reached by watching the daemon's store and processes
from outside, then hyperd is killed and started again; both tests below read
what that restart left. (Adoption of pods already running when hyperd died is
tested in tests/e2e/test_daemon_restart.py.)
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.reliability.support import SLEEPER, cut_short, recorded, states
from tests.support.daemon import Hyperd, qemu_pids

pytestmark = pytest.mark.vm


POINTS: dict[str, Callable[[Hyperd], bool]] = {
    "pod recorded, no VM yet": lambda d: bool(recorded(d, "pods")) and not qemu_pids(d.run_root),
    "QEMU started, guest booting": lambda d: bool(qemu_pids(d.run_root)),
    "pod running, its container not yet": lambda d: (
        states(d, "pods") == {"running"} and states(d, "containers") == {"pending"}
    ),
    "pod and container running": lambda d: (
        states(d, "pods") == {"running"} and states(d, "containers") == {"running"}
    ),
}


@dataclass
class Aftermath:
    """What hyperctl saw and what the restarted daemon holds."""

    run: subprocess.CompletedProcess
    pods: list[dict]
    containers: list[dict]
    vms: list[int]
    run_dirs: list[str]
    exec_output: str | None


@pytest.fixture(scope="module", params=list(POINTS))
def aftermath(request, busybox_daemon) -> Aftermath:
    daemon = busybox_daemon
    run = cut_short(daemon, ["run", "-d", "busybox", *SLEEPER], POINTS[request.param])
    try:
        containers = daemon.api("GET", "/containers")
        running = [c["id"] for c in containers if c["state"] == "running"]
        return Aftermath(
            run=run,
            pods=daemon.api("GET", "/pods"),
            containers=containers,
            vms=qemu_pids(daemon.run_root),
            run_dirs=sorted(p.name for p in (daemon.run_root / "pods").glob("*")),
            exec_output=daemon.hyperctl("exec", running[0], "echo", "alive").stdout
            if running
            else None,
        )
    finally:
        for pod in daemon.hyperctl("list", "-q").stdout.split():
            daemon.hyperctl("rm", pod, check=True)
        assert qemu_pids(daemon.run_root) == []


def test_the_run_ends_in_one_line_and_leaves_nothing_orphaned(aftermath):
    run = aftermath.run
    if run.returncode == 0:  # the answer got out just before the kill
        assert run.stdout.startswith("POD id is ") and not run.stderr, run
    else:
        assert run.returncode == 1 and len(run.stderr.splitlines()) == 1, run
        assert run.stderr.startswith("hyperctl ERROR: "), run
    running = {p["id"]: p for p in aftermath.pods if p["state"] == "running"}
    # Every QEMU and every run directory belongs to a pod recorded running, and back.
    assert sorted(aftermath.vms) == sorted(p["vm"]["pid"] for p in running.values())
    assert aftermath.run_dirs == sorted(running)
    assert all(
        p["vm"] is None and p["network"] is None for p in aftermath.pods if p["id"] not in running
    ), aftermath.pods
    assert {c["pod_id"] for c in aftermath.containers} <= {p["id"] for p in aftermath.pods}
    if any(c["state"] == "running" for c in aftermath.containers):  # reached over the new link
        assert aftermath.exec_output == "alive\n"


def test_a_running_pod_or_none(aftermath, request):
    if not aftermath.pods:
        assert aftermath.containers == [] and aftermath.vms == []
        return
    (pod,) = aftermath.pods
    assert pod["state"] == "running", pod
    assert {c["state"] for c in aftermath.containers} == {"running"}, aftermath.containers

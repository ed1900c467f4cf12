"""kill -9 of hyperd in the middle of `hyperctl rm POD` and `hyperctl stop POD`.

The daemon is killed while the pod is stopping, with its container still running
or already ended but the VM still up. After the next start, what was asked is
finished: the cut `rm` leaves no pod, container, QEMU or directory; the cut
`stop` leaves the pod stopped, no container still recorded running, no QEMU,
and a later `rm` that works. (Cuts during `run` are in test_rel_daemon_killed.py.)
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.reliability.support import SLEEPER, cut_short, states
from tests.support.daemon import Hyperd, announced_pod, qemu_pids

pytestmark = pytest.mark.vm


def stopping_with_container_running(daemon: Hyperd) -> bool:
    return states(daemon, "pods") == {"stopping"} and states(daemon, "containers") == {"running"}


def stopping_with_container_ended(daemon: Hyperd) -> bool:
    containers = states(daemon, "containers")
    return (
        states(daemon, "pods") == {"stopping"}
        and bool(containers)
        and "running" not in containers
        and bool(qemu_pids(daemon.run_root))
    )


RM_POINTS: dict[str, Callable[[Hyperd], bool]] = {
    "container still running": stopping_with_container_running,
    "container ended, VM up": stopping_with_container_ended,
}


@dataclass
class Aftermath:
    pod_id: str
    command: subprocess.CompletedProcess
    pods: list[dict]
    containers: list[dict]
    vms: list[int]
    run_dirs: list[str]
    pod_dirs: list[str]


def cut(daemon: Hyperd, verb: str, point: Callable[[Hyperd], bool]) -> Aftermath:
    """Run a pod, start `hyperctl VERB POD`, kill hyperd at `point`, start it again."""
    pod_id = announced_pod(daemon.hyperctl("run", "-d", "busybox", *SLEEPER, check=True).stdout)
    command = cut_short(daemon, [verb, pod_id], point)
    try:
        return Aftermath(
            pod_id=pod_id,
            command=command,
            pods=daemon.api("GET", "/pods"),
            containers=daemon.api("GET", "/containers"),
            vms=qemu_pids(daemon.run_root),
            run_dirs=sorted(p.name for p in (daemon.run_root / "pods").glob("*")),
            pod_dirs=sorted(p.name for p in (daemon.state_root / "pods").glob("*")),
        )
    finally:
        for pod in daemon.hyperctl("list", "-q").stdout.split():
            daemon.hyperctl("rm", pod, check=True)
        assert qemu_pids(daemon.run_root) == []


@pytest.fixture(scope="module", params=list(RM_POINTS))
def cut_rm(request, busybox_daemon) -> Aftermath:
    return cut(busybox_daemon, "rm", RM_POINTS[request.param])


@pytest.fixture(scope="module")
def cut_stop(busybox_daemon) -> Aftermath:
    return cut(busybox_daemon, "stop", stopping_with_container_running)


def assert_ended_without_leftovers(aftermath: Aftermath) -> None:
    """The cut command said one line (or its answer got out), and no VM outlived it."""
    command = aftermath.command
    if command.returncode != 0:
        assert command.returncode == 1 and len(command.stderr.splitlines()) == 1, command
        assert command.stderr.startswith("hyperctl ERROR: "), command
    assert aftermath.vms == [] and aftermath.run_dirs == []


def test_a_cut_rm_is_finished_by_the_restarted_daemon(cut_rm):
    assert_ended_without_leftovers(cut_rm)
    assert cut_rm.pods == [] and cut_rm.containers == [] and cut_rm.pod_dirs == []


def test_a_cut_stop_leaves_the_pod_stopped_and_nothing_running(cut_stop):
    assert_ended_without_leftovers(cut_stop)
    (pod,) = cut_stop.pods
    assert pod["id"] == cut_stop.pod_id and pod["state"] == "succeeded", pod
    assert pod["vm"] is None and pod["network"] is None, pod
    assert cut_stop.containers and all(c["state"] != "running" for c in cut_stop.containers)

"""kill -9 of containerd-shim-hyper-v2 in the middle of `ctr run -d`, before the VM
answers: while the sandbox's pod boots (containerd's Create), and while its container
is started (Start). containerd sees the shim go and runs `containerd-shim-hyper-v2
delete` for the task; after that no VM, hyperd pod, mount or bundle may be left, and
containerd's next calls (removing the container, a new run) work.

Debian's containerd with its own roots (tests/support/containerd.py); the shim starts
the hyperd it talks to. Each point is reached by watching that hyperd's store, the
task's bundle and /proc from outside. (A shim killed once its pod runs, through CRI:
tests/integration/containerd/test_shim_cri.py; hyperd killed under a shim:
test_shim_ctr.py.)
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.reliability.support import background, reach, states
from tests.support.containerd import BUSYBOX, SHIM_TESTS, Containerd, started_containerd
from tests.support.cri import nothing_left, until

pytestmark = SHIM_TESTS

NAMESPACE = "default"  # ctr's containerd namespace


@pytest.fixture(scope="module")
def containerd():
    with started_containerd(NAMESPACE) as daemon:
        yield daemon


def bundle(containerd: Containerd, task: str) -> Path:
    return containerd.root / "state" / "io.containerd.runtime.v2.task" / NAMESPACE / task


def hyperd_states(containerd: Containerd, table: str) -> set[str]:
    """What the shim's hyperd records, read from its store."""
    return states(SimpleNamespace(state_root=containerd.hyperd_root / "s"), table)


def sandbox_booting(containerd: Containerd, task: str) -> bool:
    """Create is under way: the pod recorded, its VM's QEMU up, the pod not running yet."""
    return hyperd_states(containerd, "pods") == {"pending"} and bool(containerd.qemu_pids())


def container_starting(containerd: Containerd, task: str) -> bool:
    """Create answered (the task's record names its container), Start not done."""
    try:
        record = json.loads((bundle(containerd, task) / "hypercontainer.json").read_text())
    except (OSError, ValueError):
        return False
    return (
        bool(record.get("container"))
        and hyperd_states(containerd, "pods") == {"running"}
        and hyperd_states(containerd, "containers") == {"pending"}
    )


POINTS: dict[str, Callable[[Containerd, str], bool]] = {
    "the sandbox's VM booting": sandbox_booting,
    "its container being started": container_starting,
}


@pytest.mark.parametrize("point", list(POINTS))
def test_a_shim_killed_before_its_vm_answers_leaves_nothing(containerd, point) -> None:
    task = f"cut-{list(POINTS).index(point)}"
    run = background(
        containerd.ctr_command(
            "run", "-d", *containerd.runtime_options(), BUSYBOX, task, "sleep", "3600"
        ),
        containerd.env,
    )
    try:
        reach(lambda: POINTS[point](containerd, task), run)
        (shim,) = containerd.shim_pids()
        os.kill(shim, signal.SIGKILL)
        _, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode != 0 and err.strip(), err  # ctr says the task did not come up

    # containerd's cleanup of the dead shim (`delete`): the pod goes once hyperd has
    # finished booting it, then its VM, and everything else.
    until(
        lambda: containerd.hyperctl("list", "-q").stdout.split() == [],
        "the shim's pod to be removed from hyperd",
    )
    nothing_left(containerd, NAMESPACE)
    assert not bundle(containerd, task).exists()
    # containerd's next calls: the container's record goes, and the name runs again.
    containerd.ctr("containers", "rm", task)
    options = containerd.runtime_options()
    again = containerd.ctr("run", "--rm", *options, BUSYBOX, task, "echo", "again")
    assert again.stdout == b"again\n"
    nothing_left(containerd, NAMESPACE)

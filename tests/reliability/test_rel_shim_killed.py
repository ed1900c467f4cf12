"""kill -9 of containerd-shim-hyper-v2 in the middle of `ctr run -d`, before the VM
answers: while the sandbox's pod boots (containerd's Create), and while its container
is started (Start). containerd sees the shim go and runs `containerd-shim-hyper-v2
delete` for the task; after that no VM, hyperd pod, mount or bundle may be left, and
containerd's next calls (removing the container, a new run) work. And kill -9 of the
hyperd under the shim, and of containerd, while the sandbox's VM boots: after
containerd's next calls (which start hyperd again; containerd started again) nothing
is left either.

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
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest

from tests.reliability.support import background, reach, states
from tests.support import cri
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


CUTS: dict[str, tuple[str, Callable[[Containerd, str], bool]]] = {
    "shim killed while the sandbox's VM boots": ("shim", sandbox_booting),
    "shim killed while its container is started": ("shim", container_starting),
    "hyperd killed while the sandbox's VM boots": ("hyperd", sandbox_booting),
    "containerd killed while the sandbox's VM boots": ("containerd", sandbox_booting),
}


def no_pod_left(containerd: Containerd) -> None:
    until(lambda: not hyperd_states(containerd, "pods"), "hyperd to hold no pod")
    nothing_left(containerd, NAMESPACE)


@pytest.mark.parametrize("cut", list(CUTS))
def test_a_shim_or_hyperd_killed_before_the_vm_answers_leaves_nothing(containerd, cut) -> None:
    victim, point = CUTS[cut]
    cut_and_clean_up(containerd, f"cut-{list(CUTS).index(cut)}", victim, point)


def test_a_shim_killed_while_its_vm_boots_cold_leaves_nothing() -> None:
    # Booted, not restored from a template: longer than containerd waits for `delete`
    # (5 s), which it then kills; the DELETE it sent is hyperd's to finish.
    with started_containerd(NAMESPACE, hyperd="[qemu]\ntemplate = false\n") as containerd:
        cut_and_clean_up(containerd, "cold", "shim", sandbox_booting)


def cut_and_clean_up(
    containerd: Containerd, task: str, victim: str, point: Callable[[Containerd, str], bool]
) -> None:
    """`ctr run -d` of `task`, `victim` (shim, hyperd, containerd) killed -9 at `point`; no
    VM, pod, mount or bundle may be left, and the task's name runs again."""
    run = background(
        containerd.ctr_command(
            "run", "-d", *containerd.runtime_options(), BUSYBOX, task, "sleep", "3600"
        ),
        containerd.env,
    )
    try:
        reach(lambda: point(containerd, task), run)
        victims = {
            "shim": containerd.shim_pids,
            "hyperd": containerd.hyperd_pids,
            "containerd": lambda: [containerd.process.pid],
        }
        (pid,) = victims[victim]()
        os.kill(pid, signal.SIGKILL)
        _, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode != 0 and err.strip(), err  # ctr says the task did not come up
    if victim == "shim":
        # containerd's cleanup of the dead shim (`delete`) removes the pod, once hyperd
        # has finished booting it, then its VM goes, and everything else.
        no_pod_left(containerd)
        assert not bundle(containerd, task).exists()
    if victim == "containerd":
        # The shim goes on with Create while containerd is gone (its log's reader), and
        # containerd, started again, finds the shim and that task.
        containerd.process.wait(30)
        until(
            lambda: hyperd_states(containerd, "containers") == {"pending"},
            "the shim to create the task's container while containerd is gone",
        )
        containerd.start()
        until(
            lambda: f"\n{task} " in containerd.ctr("task", "ls").stdout.decode(),
            "the shim to have created the task",
        )
        containerd.ctr("task", "delete", "--force", task)
    # containerd's next calls: the container's record goes, and the name runs again (a
    # killed hyperd is started again by the shim, and undoes the cut start).
    containerd.ctr("containers", "rm", task)
    options = containerd.runtime_options()
    again = containerd.ctr("run", "--rm", *options, BUSYBOX, task, "echo", "again")
    assert again.stdout == b"again\n"
    no_pod_left(containerd)
    assert not bundle(containerd, task).exists()


def test_a_shim_killed_while_cri_runs_its_sandbox_leaves_nothing(tmp_path) -> None:
    # A kubelet's way in: RunPodSandbox, cut while the sandbox's VM boots; the CRI
    # plugin undoes what it made, and the kubelet's next RunPodSandbox works.
    with started_containerd(cri.NAMESPACE) as containerd:
        client = cri.Cri(containerd.address, tmp_path / "protos")
        try:
            failed: list[grpc.RpcError] = []

            def run_pod_sandbox() -> None:
                try:
                    cri.Pod(client, "cut", tmp_path)
                except grpc.RpcError as e:
                    failed.append(e)

            request = threading.Thread(target=run_pod_sandbox)
            request.start()
            try:
                reach(lambda: sandbox_booting(containerd, ""), request)
                (shim,) = containerd.shim_pids()
                os.kill(shim, signal.SIGKILL)
            finally:
                request.join(120)
            assert failed, "RunPodSandbox succeeded with its shim killed"
            until(lambda: not hyperd_states(containerd, "pods"), "hyperd to hold no pod")
            nothing_left(containerd)
            cri.Pod(client, "cut", tmp_path).remove()
            nothing_left(containerd)
        finally:
            client.close()

"""Kubernetes' way in: containerd's CRI plugin with the runtime handler `hyper`, driven by
a CRI client generated in the test run from the CRI api.proto, as a kubelet drives it.

Two VMs: one sandbox with two containers (exec, logs, stop, then its VM killed -9),
and one whose shim is killed -9. After RemovePodSandbox nothing is left: no QEMU, no
shim, no mount, no directory."""

from __future__ import annotations

import os
import re
import shutil
import signal

import pytest

from tests.support.containerd import Containerd
from tests.support.cri import NAMESPACE, Cri, Pod, nothing_left, until

pytestmark = [
    pytest.mark.vm,
    pytest.mark.root,
    pytest.mark.skipif(
        os.geteuid() != 0 or not shutil.which("containerd"),
        reason="needs root and Debian's containerd",
    ),
]

RUNNING, EXITED = 1, 2  # ContainerState
NOT_READY = 1  # PodSandboxState


@pytest.fixture(scope="module")
def containerd():
    daemon = Containerd().start()
    try:
        daemon.import_images(namespace=NAMESPACE)
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture(scope="module")
def cri(containerd, tmp_path_factory):
    client = Cri(containerd.address, tmp_path_factory.mktemp("cri-protos"))
    yield client
    client.close()


@pytest.fixture(scope="module")
def pod(cri, containerd, tmp_path_factory):
    pod = Pod(cri, "web", tmp_path_factory.mktemp("logs"))
    yield pod
    try:
        pod.remove()
    except Exception:  # noqa: BLE001 - removed by the test already
        pass


def test_a_sandbox_with_two_containers_is_one_shim_and_one_vm(cri, containerd, pod) -> None:
    app = pod.container(
        "app", ["sh", "-c", "echo started; trap 'exit 4' TERM; while :; do sleep 1; done"]
    )
    side = pod.container(
        "side",
        ["sh", "-c", "echo side-out; echo side-err >&2; sleep 3600"],
        envs=[cri.message("KeyValue", key="ROLE", value="side")],
    )
    pod.app, pod.side = app, side
    assert pod.status(app).state == RUNNING and pod.status(side).state == RUNNING
    assert len(containerd.qemu_pids()) == 1
    assert len(containerd.shim_pids()) == 1
    listing = containerd.hyperctl("list").stdout
    assert re.search(r"^web\.shim-test-[0-9a-f]{8}\s", listing, re.M), listing
    containers = containerd.hyperctl("list", "container").stdout
    assert re.search(r"app-[0-9a-f]{8}", containers) and re.search(
        r"side-[0-9a-f]{8}", containers
    ), containers


def test_exec_sync_gives_output_and_exit_code(cri, pod) -> None:
    answer = cri.ExecSync(
        cri.message(
            "ExecSyncRequest",
            container_id=pod.side,
            timeout=60,
            cmd=["sh", "-c", "echo $ROLE; echo oops >&2; exit 3"],
        )
    )
    assert (answer.stdout, answer.stderr, answer.exit_code) == (b"side\n", b"oops\n", 3)


def test_container_logs_are_in_cri_format(pod) -> None:
    until(lambda: len(pod.log_lines("side")) >= 2, "the side container's output")
    assert sorted(pod.log_lines("side")) == [("stderr", "side-err"), ("stdout", "side-out")]
    assert pod.log_lines("app") == [("stdout", "started")]


def test_stop_container_reports_the_exit_code(cri, pod) -> None:
    cri.StopContainer(cri.message("StopContainerRequest", container_id=pod.app, timeout=20))
    status = pod.status(pod.app)
    assert (status.state, status.exit_code) == (EXITED, 4)
    assert status.finished_at >= status.started_at > 0


def test_a_killed_vm_is_cleaned_up_by_the_next_call(cri, containerd, pod) -> None:
    (qemu,) = containerd.qemu_pids()
    os.kill(qemu, signal.SIGKILL)
    until(lambda: pod.status(pod.side).state == EXITED, "the side container to be exited")
    until(lambda: pod.sandbox_state() == NOT_READY, "the sandbox to be not ready")
    pod.remove()
    nothing_left(containerd)


def test_a_killed_shim_is_cleaned_up_by_the_next_call(cri, containerd, tmp_path) -> None:
    lone = Pod(cri, "lone", tmp_path)
    worker = lone.container("worker", ["sleep", "3600"])
    until(lambda: len(containerd.shim_pids()) == 1, "this pod's shim alone")
    (shim,) = containerd.shim_pids()
    os.kill(shim, signal.SIGKILL)
    # containerd runs `containerd-shim-hyper-v2 delete` for each task: the VM goes
    until(lambda: not containerd.qemu_pids(), "containerd's cleanup of the dead shim's VM")
    until(lambda: lone.status(worker).state == EXITED, "the worker to be exited")
    lone.remove()
    nothing_left(containerd)

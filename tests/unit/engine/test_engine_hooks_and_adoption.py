"""Hooks around the lifecycle (their order, and vetoes that change nothing), and a
restarted hyperd adopting what outlived it."""

from __future__ import annotations

import threading

import pytest
from hypercontainer import runtime as runtime_module
from hypercontainer.errors import NotFound, UserError
from hypercontainer.guest.agent.outbox import Session
from hypercontainer.model import ContainerState, PodState
from hypercontainer.testing import Engine

from tests.support.engine import Recorder, eventually


def engine_with(tmp_path, recorder: Recorder) -> Engine:
    return Engine(tmp_path, plugins=[recorder])


def state(engine: Engine) -> tuple:
    store = engine.runtime.store
    return (
        [(p.id, p.state, p.vm, p.network) for p in store.pods()],
        [(c.id, c.state) for c in store.containers()],
        [vm.id for vm in engine.host.running()],
    )


def test_post_hooks_follow_a_pods_life_in_order(tmp_path):
    recorder = Recorder()
    engine = engine_with(tmp_path, recorder)
    try:
        pod = engine.runtime.run_pod(engine.pod("sleep", "60"))
        engine.runtime.remove_pod(pod.id)
    finally:
        engine.close()
    assert recorder.seen == [
        "pod_post_create",
        "pod_post_start",
        "container_post_start",
        "container_post_stop 143",
        "pod_post_stop succeeded",
        "pod_post_remove",
    ]


@pytest.mark.parametrize("hook", ["pod_pre_create", "pod_pre_start"])
def test_a_vetoed_pod_leaves_nothing(tmp_path, hook):
    engine = engine_with(tmp_path, Recorder(veto=(hook,)))
    try:
        with pytest.raises(UserError, match=f"{hook} vetoed by the test"):
            engine.runtime.run_pod(engine.pod("sleep", "60", id="vetoed"))
        assert state(engine) == ([], [], [])
        assert not engine.runtime.files.run_dir("vetoed").exists()
    finally:
        engine.close()


@pytest.mark.parametrize(
    ("hook", "operation"),
    [
        (
            "container_pre_create",
            lambda e, pod, c: e.runtime.containers.create(pod.id, e.container("sleep", "1")),
        ),
        ("container_pre_stop", lambda e, pod, c: e.runtime.containers.stop(c.id)),
        ("container_pre_remove", lambda e, pod, c: e.runtime.containers.remove(c.id)),
        ("pod_pre_stop", lambda e, pod, c: e.runtime.stop_pod(pod.id)),
        ("pod_pre_remove", lambda e, pod, c: e.runtime.remove_pod(pod.id)),
    ],
)
def test_a_vetoed_operation_on_a_running_pod_changes_nothing(tmp_path, hook, operation):
    recorder = Recorder()
    engine = engine_with(tmp_path, recorder)
    try:
        pod = engine.runtime.run_pod(engine.pod("sleep", "60"))
        (container,) = engine.runtime.store.containers(pod.id)
        before = state(engine)
        recorder.veto = (hook,)
        with pytest.raises(UserError, match=f"{hook} vetoed by the test"):
            operation(engine, pod, container)
        assert state(engine) == before
    finally:
        engine.close()


def test_a_vetoed_container_start_fails_that_container_only(tmp_path):
    recorder = Recorder()
    engine = engine_with(tmp_path, recorder)
    try:
        pod = engine.runtime.run_pod(engine.pod("sleep", "60"))
        added = engine.runtime.containers.create(pod.id, engine.container("sleep", "1"))
        recorder.veto = ("container_pre_start",)
        with pytest.raises(UserError, match="container_pre_start vetoed"):
            engine.runtime.containers.start(added.id)
        assert engine.runtime.store.container(added.id).state == ContainerState.PENDING
        assert engine.runtime.store.pod(pod.id).state == PodState.RUNNING
    finally:
        engine.close()


# -- a restarted hyperd -----------------------------------------------------------


def test_a_restarted_daemon_adopts_a_running_pod(engine):
    pod = engine.runtime.run_pod(engine.pod("sleep", "60"))
    (container,) = engine.runtime.store.containers(pod.id)
    runtime = engine.restart()
    assert runtime.store.pod(pod.id).state == PodState.RUNNING and pod.id in runtime.sessions
    assert runtime.containers.stop(container.id, timeout=1).exit_code == 143
    runtime.remove_pod(pod.id)
    assert engine.host.running() == []


def test_an_exit_while_no_daemon_listened_is_applied_on_adoption(engine):
    pod = engine.runtime.run_pod(engine.pod("sleep", "60"))
    (container,) = engine.runtime.store.containers(pod.id)
    engine.runtime.shutdown()  # hyperd is gone; the VM and its container run on
    engine.host.vm(pod.id).guest.process(container.id).exit(7)
    runtime = engine.restart()
    eventually(lambda: runtime.store.pod(pod.id).state == PodState.FAILED, "pod ended")
    assert runtime.store.container(container.id).exit_code == 7


def test_a_vm_gone_while_no_daemon_listened_fails_its_pod(engine):
    pod = engine.runtime.run_pod(engine.pod("sleep", "60"))
    engine.runtime.shutdown()
    engine.host.vm(pod.id).crash()
    runtime = engine.restart()
    failed = runtime.store.pod(pod.id)
    assert (failed.state, failed.error) == (
        PodState.FAILED,
        "the VM was gone when hyperd restarted",
    )


def test_a_guest_that_does_not_answer_a_restarted_daemon_fails_only_its_pod(engine, monkeypatch):
    monkeypatch.setattr(runtime_module, "ADOPTED_AGENT_TIMEOUT", 0.5)
    mute = engine.runtime.run_pod(engine.pod("sleep", "60"))
    other = engine.runtime.run_pod(engine.pod("sleep", "60"))
    guest = engine.host.vm(mute.id).guest
    # The next host's handshake is taken, never answered.
    monkeypatch.setattr(guest.server, "_handshake", lambda connection, payload: Session(-1, print))
    runtime = engine.restart()
    failed = runtime.store.pod(mute.id)
    assert (failed.state, failed.error) == (
        PodState.FAILED,
        "not adopted: guest agent did not answer hello within 0.5 s",
    )
    assert not engine.host.vm(mute.id).running and mute.id not in runtime.sessions
    assert runtime.store.pod(other.id).state == PodState.RUNNING and other.id in runtime.sessions


def test_a_restarted_daemon_links_up_with_every_guest_at_once(engine, monkeypatch):
    """Each guest answers the new hyperd's handshake only once the other's has come:
    one after the other, the first would wait out its timeout."""
    monkeypatch.setattr(runtime_module, "ADOPTED_AGENT_TIMEOUT", 5.0)
    pods = [engine.runtime.run_pod(engine.pod("sleep", "60")) for _ in range(2)]
    hellos = [threading.Event(), threading.Event()]
    for mine, theirs, pod in ((0, 1, pods[0]), (1, 0, pods[1])):
        server = engine.host.vm(pod.id).guest.server
        real = server._handshake

        def handshake(connection, payload, mine=mine, theirs=theirs, real=real):
            hellos[mine].set()
            hellos[theirs].wait(10)
            return real(connection, payload)

        monkeypatch.setattr(server, "_handshake", handshake)
    runtime = engine.restart()
    assert [runtime.store.pod(pod.id).state for pod in pods] == [PodState.RUNNING] * 2
    assert all(pod.id in runtime.sessions for pod in pods)


def test_a_paused_pod_is_adopted_and_stays_paused(engine):
    pod = engine.runtime.run_pod(engine.pod("sleep", "60"))
    engine.runtime.pause_pod(pod.id)
    runtime = engine.restart()
    assert runtime.store.pod(pod.id).state == PodState.PAUSED
    assert engine.host.vm(pod.id).paused and runtime.sessions[pod.id].paused
    runtime.unpause_pod(pod.id)
    assert not runtime.sessions[pod.id].paused
    runtime.remove_pod(pod.id)


def test_a_removal_cut_short_is_finished_on_restart(engine):
    pod = engine.runtime.run_pod(engine.pod("sleep", "60"))
    engine.runtime.store.update_pod(pod.id, lambda p: setattr(p, "removing", True))
    engine.runtime.shutdown()  # killed after recording the removal, before doing it
    runtime = engine.restart()
    with pytest.raises(NotFound):
        runtime.store.pod(pod.id)
    assert engine.host.running() == []


def test_a_run_cut_short_while_booting_is_undone_on_restart(engine):
    pod = engine.runtime.create_pod(engine.pod("sleep", "60"), transient=True)
    engine.runtime.store.update_pod(pod.id, lambda p: setattr(p, "starting", True))
    engine.runtime.shutdown()
    runtime = engine.restart()
    assert runtime.store.pods() == []
    assert not runtime.files.run_dir(pod.id).exists()


def test_a_run_cut_before_its_start_began_is_undone_on_restart(engine):
    # `hyperctl run` creates the pod, prints its id, then asks for the start: a daemon
    # killed in between leaves a transient pod that nothing will ever start.
    pod = engine.runtime.create_pod(engine.pod("sleep", "60"), transient=True)
    created = engine.runtime.create_pod(engine.pod("sleep", "60"))  # `create`: it stays
    engine.runtime.shutdown()
    runtime = engine.restart()
    assert [p.id for p in runtime.store.pods()] == [created.id]
    assert runtime.store.containers(pod.id) == []

"""The lifecycle on fake VMs: create, start, stop, remove, pods ending with their last
container, restart policies, and what a failure part-way leaves (nothing)."""

from __future__ import annotations

import signal

import pytest
from hypercontainer import containers as containers_module
from hypercontainer.errors import Conflict, DriverError, HyperError, NoSpace, NotFound
from hypercontainer.model import ContainerState, PodState
from hypercontainer.testing import Engine

from tests.support.engine import eventually


def leftovers(engine: Engine, pod_id: str) -> list[str]:
    """What of a pod still exists anywhere: record, VM, directories."""
    found = [f"pod {p.id}" for p in engine.runtime.store.pods() if p.id == pod_id]
    found += [f"vm {vm.id}" for vm in engine.host.running() if vm.spec.pod_id == pod_id]
    files = engine.runtime.files
    found += [str(d) for d in (files.pod_dir(pod_id), files.run_dir(pod_id)) if d.exists()]
    return found


def test_run_boots_the_vm_and_starts_the_container(engine):
    pod = engine.runtime.run_pod(engine.pod("sleep", "60", hostname="web"))
    assert pod.state == PodState.RUNNING and not pod.starting and not pod.transient
    (container,) = engine.runtime.store.containers(pod.id)
    assert container.state == ContainerState.RUNNING
    vm = engine.host.vm(pod.id)
    assert vm.running and vm.guest.network.hostname == "web"
    assert vm.guest.network.interface["address"] == "10.0.2.15/24"  # the user network's
    assert vm.guest.process(container.id).argv == ["sleep", "60"]
    assert vm.guest.requests[:1] == ["start_pod"]


def test_stop_signals_the_containers_then_powers_the_vm_off(engine):
    pod = engine.runtime.run_pod(engine.pod("sleep", "60"))
    stopped = engine.runtime.stop_pod(pod.id)
    assert stopped.state == PodState.SUCCEEDED and stopped.vm is None and stopped.network is None
    (container,) = engine.runtime.store.containers(pod.id)
    assert (container.state, container.exit_code) == (ContainerState.FAILED, 128 + 15)
    assert engine.host.running() == []
    assert "destroy_pod" in engine.host.vm(pod.id).guest.requests
    with pytest.raises(Conflict, match="is not running"):
        engine.runtime.stop_pod(pod.id)


def test_a_container_ignoring_sigterm_is_killed_after_its_timeout(engine):
    pod = engine.runtime.run_pod(engine.pod("stubborn"))
    (container,) = engine.runtime.store.containers(pod.id)
    stopped = engine.runtime.containers.stop(container.id, timeout=0.01)
    assert (stopped.state, stopped.exit_code) == (ContainerState.FAILED, 128 + signal.SIGKILL)
    assert stopped.user_stopped
    assert engine.runtime.store.pod(pod.id).state == PodState.RUNNING  # stopped by the user


def test_remove_leaves_nothing_of_the_pod(engine):
    pod = engine.runtime.run_pod(engine.pod("sleep", "60"))
    engine.runtime.remove_pod(pod.id)
    assert leftovers(engine, pod.id) == []
    with pytest.raises(NotFound):
        engine.runtime.store.pod(pod.id)


def test_containers_added_to_a_running_pod_start_stop_and_go(engine):
    pod = engine.runtime.run_pod(engine.pod("sleep", "60"))
    added = engine.runtime.containers.create(pod.id, engine.container("echo", "hi"), start=True)
    added = engine.runtime.containers.wait(added.id, 5)
    assert (added.state, added.exit_code) == (ContainerState.SUCCEEDED, 0)
    assert [entry[2] for entry in engine.runtime.containers.logs(added.id)] == [b"hi\n"]
    engine.runtime.containers.start(added.id)  # again: a fresh process
    eventually(lambda: len(list(engine.runtime.containers.logs(added.id))) == 2, "second run")
    engine.runtime.containers.remove(added.id)
    assert [c.id for c in engine.runtime.store.containers(pod.id)] != [added.id]
    assert not engine.runtime.files.pod_dir(pod.id).joinpath("logs", f"{added.id}.log").exists()
    assert engine.runtime.store.pod(pod.id).state == PodState.RUNNING


@pytest.mark.parametrize(
    ("command", "state", "code"),
    [
        (("echo", "done"), PodState.SUCCEEDED, 0),
        (("sh", "-c", "exit 3"), PodState.FAILED, 3),
    ],
)
def test_a_pod_ends_with_its_last_container(engine, command, state, code):
    pod = engine.runtime.run_pod(engine.pod(*command))
    eventually(lambda: engine.runtime.store.pod(pod.id).state == state, f"pod {state}")
    (container,) = engine.runtime.store.containers(pod.id)
    assert container.exit_code == code
    assert engine.host.running() == []


@pytest.fixture
def quick_restarts(monkeypatch):
    monkeypatch.setattr(containers_module, "RESTART_BACKOFF_FIRST", 0.001)


def test_on_failure_restarts_a_failing_container_and_not_a_succeeding_one(engine, quick_restarts):
    pod = engine.runtime.run_pod(engine.pod("sh", "-c", "exit 1", restartPolicy="onFailure"))
    (container,) = engine.runtime.store.containers(pod.id)
    guest = engine.host.vm(pod.id).guest
    eventually(lambda: guest.requests.count("start_container") >= 3, "two restarts")
    assert engine.runtime.store.pod(pod.id).state == PodState.RUNNING  # it will run again
    engine.runtime.stop_pod(pod.id)
    assert engine.runtime.store.pod(pod.id).state == PodState.SUCCEEDED

    done = engine.runtime.run_pod(engine.pod("true", restartPolicy="onFailure"))
    eventually(lambda: engine.runtime.store.pod(done.id).state == PodState.SUCCEEDED, "ended")
    assert engine.host.vm(done.id).guest.requests.count("start_container") == 1


def test_always_restarts_until_the_user_stops_it(engine, quick_restarts):
    pod = engine.runtime.run_pod(engine.pod("true", restartPolicy="always"))
    (container,) = engine.runtime.store.containers(pod.id)
    guest = engine.host.vm(pod.id).guest
    eventually(lambda: guest.requests.count("start_container") >= 3, "two restarts")
    engine.runtime.stop_pod(pod.id)
    starts = guest.requests.count("start_container")
    assert engine.runtime.store.pod(pod.id).state == PodState.SUCCEEDED
    assert guest.requests.count("start_container") == starts


# -- failures part-way ----------------------------------------------------------


def test_a_vm_that_fails_to_start_leaves_nothing(engine):
    engine.host.start_error = "no room for another VM"
    with pytest.raises(DriverError, match="no room for another VM"):
        engine.runtime.run_pod(engine.pod("sleep", "60", id="doomed"))
    assert leftovers(engine, "doomed") == []


def test_a_guest_that_refuses_the_pod_fails_it_and_a_new_start_works(engine):
    pod = engine.runtime.create_pod(engine.pod("sleep", "60"))
    engine.host.on_boot = lambda vm: vm.guest.fail_next("start_pod", "no hostname for you")
    with pytest.raises(HyperError, match="no hostname for you"):
        engine.runtime.start_pod(pod.id)
    failed = engine.runtime.store.pod(pod.id)
    assert (failed.state, failed.vm, failed.network) == (PodState.FAILED, None, None)
    assert "no hostname for you" in failed.error and engine.host.running() == []
    engine.host.on_boot = None
    assert engine.runtime.start_pod(pod.id).state == PodState.RUNNING


def test_a_container_the_guest_cannot_create_fails_with_the_reason_in_its_log(engine):
    pod = engine.runtime.run_pod(engine.pod("sleep", "60"))
    engine.host.vm(pod.id).guest.fail_next("create_container", "no space left on device")
    added = engine.runtime.containers.create(pod.id, engine.container("sleep", "1"))
    with pytest.raises(HyperError, match="no space left on device"):
        engine.runtime.containers.start(added.id)
    added = engine.runtime.store.container(added.id)
    assert (added.state, added.exit_code) == (ContainerState.FAILED, 127)
    assert b"no space left on device" in b"".join(
        e[2] for e in engine.runtime.containers.logs(added.id)
    )
    assert engine.runtime.store.pod(pod.id).state == PodState.RUNNING  # the other still runs


def test_a_vm_dying_under_its_pod_fails_the_pod(engine):
    pod = engine.runtime.run_pod(engine.pod("sleep", "60"))
    engine.host.vm(pod.id).crash()
    eventually(lambda: engine.runtime.store.pod(pod.id).state == PodState.FAILED, "failed")
    failed = engine.runtime.store.pod(pod.id)
    assert failed.error == "the VM exited" or "closed" in failed.error
    (container,) = engine.runtime.store.containers(pod.id)
    assert (container.state, container.exit_code) == (ContainerState.FAILED, None)
    assert engine.runtime.sessions == {} and failed.network is None


def test_an_exec_runs_beside_the_container_and_is_signalled_alone(engine):
    from hypercontainer.subscribers import Listener

    pod = engine.runtime.run_pod(engine.pod("sleep", "60"))
    (container,) = engine.runtime.store.containers(pod.id)
    exec_id = engine.runtime.containers.exec(container.id, ["sleep", "9"], False, Listener())
    guest = engine.host.vm(pod.id).guest
    assert guest.process(container.id, exec_id).status == "running"
    engine.runtime.containers.signal_exec(container.id, exec_id, signal.SIGTERM)
    eventually(lambda: guest.process(container.id, exec_id).status == "exited", "exec ended")
    assert guest.process(container.id, exec_id).code == 128 + signal.SIGTERM
    engine.runtime.containers.signal_exec(container.id, exec_id, signal.SIGTERM)  # harmless
    assert engine.runtime.store.container(container.id).state == ContainerState.RUNNING


def test_an_exit_the_store_has_no_space_for_is_recorded_once_it_has(engine, monkeypatch):
    monkeypatch.setattr(containers_module, "EXIT_RECORD_RETRY", 0.001)
    store, refusals = engine.runtime.store, []
    transition = store.transition_container

    def full_twice(container_id, state, **changes):
        if state == ContainerState.SUCCEEDED and len(refusals) < 2:
            refusals.append(state)
            raise NoSpace("no space left on hyperd's state root (/s)")
        return transition(container_id, state, **changes)

    monkeypatch.setattr(store, "transition_container", full_twice)
    pod = engine.runtime.run_pod(engine.pod("echo", "done"))
    eventually(lambda: store.pod(pod.id).state == PodState.SUCCEEDED, "pod succeeded")
    (container,) = store.containers(pod.id)
    assert (container.state, container.exit_code, len(refusals)) == (ContainerState.SUCCEEDED, 0, 2)

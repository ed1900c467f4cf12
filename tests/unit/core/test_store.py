"""The state store: transitions checked in one transaction, lookups by id, name or prefix."""

import multiprocessing
import os
import sqlite3
import threading

import pytest
from hypercontainer.errors import Conflict, NotFound, UserError
from hypercontainer.model import Container, ContainerState, Pod, PodState
from hypercontainer.store import Store


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "state.db")


def pod(name="busybox-0000000001", vm="vm-abcdefghij"):
    return Pod(id=name, name=name, vm_name=vm, spec={"id": name})


def container(pod_id, name="busybox-0000000002", cid="ab" * 32):
    return Container(id=cid, name=name, pod_id=pod_id, image="busybox", spec={})


def test_pod_lookup_by_id_name_and_unique_prefix(store):
    store.add_pod(pod())
    store.add_pod(pod("nginx-0000000003", "vm-zzzzzzzzzz"))
    assert store.pod("busybox-0000000001").vm_name == "vm-abcdefghij"
    assert store.pod("ngi").id == "nginx-0000000003"
    with pytest.raises(NotFound, match="no such pod: redis"):
        store.pod("redis")


def test_ambiguous_prefix_is_refused(store):
    store.add_pod(pod("busybox-1"))
    store.add_pod(pod("busybox-2", "vm-bbbbbbbbbb"))
    with pytest.raises(UserError, match="ambiguous"):
        store.pod("busybox-")


def test_references_match_literally_and_with_case(store):
    store.add_pod(pod("busybox-1"))
    for ref in ("%", "b_sybox", "BUSYBOX", "Busybox-1"):
        with pytest.raises(NotFound):
            store.pod(ref)


def test_duplicate_names_are_conflicts(store):
    store.add_pod(pod())
    with pytest.raises(Conflict, match="already exists"):
        store.add_pod(pod())


def test_legal_transitions_apply_and_illegal_ones_change_nothing(store):
    store.add_pod(pod())
    store.transition_pod("busybox-0000000001", PodState.RUNNING, started="now")
    with pytest.raises(Conflict, match="is running, it cannot become pending"):
        store.transition_pod("busybox-0000000001", PodState.PENDING)
    record = store.pod("busybox-0000000001")
    assert record.state == PodState.RUNNING and record.started == "now"


def test_container_transitions_follow_exit_codes(store):
    store.add_pod(pod())
    store.add_container(container("busybox-0000000001"))
    cid = "ab" * 32
    with pytest.raises(Conflict):
        store.transition_container(cid, ContainerState.SUCCEEDED)
    store.transition_container(cid, ContainerState.RUNNING)
    store.transition_container(cid, ContainerState.FAILED, exit_code=17)
    assert store.container("abab").exit_code == 17


def test_container_needs_its_pod_and_goes_with_it(store):
    with pytest.raises(NotFound):
        store.add_container(container("nopod"))
    store.add_pod(pod())
    store.add_container(container("busybox-0000000001"))
    store.remove_pod("busybox-0000000001")
    assert store.containers() == []


def test_a_failing_change_rolls_back(store):
    store.add_pod(pod())

    def broken(record):
        record.error = "half-written"
        raise RuntimeError("crash in the middle")

    with pytest.raises(RuntimeError):
        store.update_pod("busybox-0000000001", broken)
    assert store.pod("busybox-0000000001").error is None


def _crash_mid_transaction(path):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    db.execute("UPDATE pods SET record = 'garbage'")
    import os

    os._exit(9)  # dies with the transaction open, as a killed daemon would


def test_the_store_survives_a_process_killed_mid_transaction(store):
    store.add_pod(pod())
    process = multiprocessing.get_context("fork").Process(
        target=_crash_mid_transaction, args=(store.path,)
    )
    process.start()
    process.join()
    assert process.exitcode == 9
    reopened = Store(store.path)
    assert reopened.pod("busybox-0000000001").state == PodState.PENDING


def _open_files(path) -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == str(path)
        except OSError:  # the listing's own descriptor, gone by now
            pass
    return count


def test_threads_share_connections_so_open_files_do_not_grow(tmp_path):
    # hyperd serves every request in a thread of its own (the soak test found this).
    path = tmp_path / "state.db"
    store = Store(path)

    def request(number: int) -> None:
        store.add_pod(pod(f"pod-{number:010d}", f"vm-{number:010d}"))
        store.pods()

    for number in range(200):
        thread = threading.Thread(target=request, args=(number,))
        thread.start()
        thread.join()
    assert len(store.pods()) == 200
    assert _open_files(path) == 1

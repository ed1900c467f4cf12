"""The runtime against a hostile guest: one pod's guest (hypercontainer.testing's FakeGuest,
the real agent server and outbox) sends what a compromised guest would, through the
outbox (well framed, numbered, under flow control) or raw on the wire, while another
pod's guest serves. The real Runtime, store, agent client, sessions, logs, subscribers.

What must hold: the other pod is never touched and keeps being served; a guest can
only speak of its own pod's containers; what it sends is bounded in hyperd's memory;
a protocol violation fails its pod with the reason and stops its VM; nothing it
sends names a host path that hyperd then opens or writes.
"""

from __future__ import annotations

import json
import threading
import time
import tracemalloc

import pytest
from hypercontainer import pod_session, subscribers
from hypercontainer.errors import HyperError
from hypercontainer.guest.agent import protocol
from hypercontainer.model import ContainerState, PodState
from hypercontainer.subscribers import Listener

from tests.reliability.support import tree


class Pods:
    """Pods of the engine by name, their guests, and what the test asks of them."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.runtime = engine.runtime

    def run(self, pod_id: str, containers: int = 1) -> str:
        """A running pod of `containers` sleeping containers; its first container's id."""
        command = {"image": "hc-tiny", "command": ["sleep", "1000"]}
        self.runtime.run_pod(self.engine.pod(id=pod_id, containers=[command] * containers))
        records = self.runtime.store.containers(pod_id)
        assert [c.state for c in records] == [ContainerState.RUNNING] * containers
        return records[0].id

    def guest(self, pod_id: str):
        return self.engine.host.vm(pod_id).guest

    def pod(self, pod_id: str):
        return self.runtime.store.pod(pod_id)

    def container(self, container_id: str):
        return self.runtime.store.container(container_id)

    def exit(self, pod_id: str, container, code=0, exec_id=None) -> None:
        """An exit event from the pod's guest, about whatever it names."""
        self.guest(pod_id).outbox.event(
            {
                "event": "exit",
                "key": str(container),
                "container": container,
                "exec": exec_id,
                "code": code,
            }
        )

    def settle(self, pod_id: str) -> None:
        """What the pod's guest sent so far was delivered: the reply to a ping comes
        after it, and a delivery queued after that reply runs after it."""
        agent = self.runtime.sessions[pod_id].agent
        self.guest(pod_id).outbox.flush(10)
        agent.ping()
        done = threading.Event()
        agent._deliveries.put([(0, done.set, ())])
        assert done.wait(30)

    def wait(self, predicate, what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.01)

    def failed(self, pod_id: str) -> str:
        self.wait(lambda: self.pod(pod_id).state == PodState.FAILED, f"pod {pod_id} to fail")
        pod = self.pod(pod_id)
        assert pod.vm is None and not self.engine.host.vm(pod_id).running
        assert pod_id not in self.runtime.sessions
        return pod.error

    def log_lines(self, container_id: str) -> list[dict]:
        files = self.runtime.files.log(self.container(container_id)).files()  # oldest first
        return [
            json.loads(line) for f in files if f.exists() for line in f.read_text().splitlines()
        ]

    def unanswered_signal(self, pod_id: str, container_id: str, ping_too: bool) -> None:
        """A signal the pod's guest never answers (with `ping_too`, nor the ping after it)."""
        guest = self.guest(pod_id)
        guest.silence("signal")
        if ping_too:
            guest.silence("ping")
        with pytest.raises(HyperError, match="did not answer signal within 0.5 s"):
            self.runtime.sessions[pod_id].agent.signal(container_id, 15, timeout=0.5)

    def exec_works(self, container_id: str) -> None:
        """An exec in the container runs, its output and exit reach their listener."""
        listener = Listener()
        self.runtime.containers.exec(container_id, ["echo", "hi"], False, listener)
        items = [listener.take()]
        while items[-1][0] != "exit":
            items.append(listener.take())
        # ("started",) is the caller's own, put there once the request was answered: a
        # process this quick may have printed and ended before.
        assert items[-1] == ("exit", 0, None)
        assert ("out", "stdout", b"hi\n") in items


@pytest.fixture
def pods(engine):
    return Pods(engine)


def test_exits_and_output_for_another_pods_container_are_ignored(pods):
    victim = pods.run("victim")
    pods.run("hostile")
    name = pods.container(victim).name
    for target in (victim, name, victim[:12], "victim", "", "../" + victim, None, 7, [victim]):
        pods.exit("hostile", target)
        pods.exit("hostile", target, exec_id="x")
    guest = pods.guest("hostile")
    guest.outbox.data(guest.outbox.open_stream(victim, "stdout"), b"injected\n")
    guest.outbox.event({"event": "reboot-the-host", "container": victim})
    pods.settle("hostile")
    assert pods.container(victim).state == ContainerState.RUNNING
    assert pods.log_lines(victim) == []
    assert pods.pod("victim").state == PodState.RUNNING
    assert pods.runtime.sessions["hostile"].agent.oddities == 20
    pods.exec_works(victim)


@pytest.mark.parametrize("code", ["0", 1.5, True, 2**40, -(2**40), [0], {"x": 1}])
def test_an_exit_with_a_bad_code_is_ignored_and_the_store_stays_readable(pods, code):
    cid = pods.run("hostile")
    pods.exit("hostile", cid, code)
    pods.settle("hostile")
    assert pods.container(cid).state == ContainerState.RUNNING
    assert [c.id for c in pods.runtime.store.containers()] == [cid]


def test_an_exit_without_a_code_is_a_lost_process(pods):
    cid = pods.run("pod", containers=2)
    pods.exit("pod", cid, None)
    pods.settle("pod")
    assert (pods.container(cid).state, pods.container(cid).exit_code) == (
        ContainerState.FAILED,
        None,
    )


@pytest.mark.parametrize(
    "frame",
    [
        protocol.encode_frame(0, b"\x00garbage"),
        protocol.encode_frame(0, b"[]"),
        b"\x00\x00\x00\x00\xff\xff\xff\xff",
        protocol.encode_message({"reply": "x"}),
        protocol.encode_message({"event": "stream", "stream": -1, "key": "k", "fd": "stdout"}),
    ],
)
def test_a_protocol_violation_fails_the_pod_with_the_reason_and_stops_its_vm(pods, frame):
    other = pods.run("other")
    cid = pods.run("hostile")
    pods.guest("hostile").write_raw(frame)
    assert pods.failed("hostile").startswith("guest agent misbehaved: ")
    assert pods.container(cid).state == ContainerState.FAILED
    assert pods.pod("other").state == PodState.RUNNING
    pods.exec_works(other)


def test_a_guest_cutting_its_link_mid_frame_fails_its_pod(pods):
    pods.run("hostile")
    guest = pods.guest("hostile")
    guest.write_raw(protocol.encode_message({"event": "exit", "container": "c"})[:9])
    guest.hang_up()  # the agent drops its end; the VM itself keeps running
    assert pods.failed("hostile") == (
        "guest agent misbehaved: connection closed in the middle of a frame"
    )


def test_an_agent_link_ending_while_its_vm_runs_fails_the_pod(pods, monkeypatch):
    monkeypatch.setattr(pod_session, "VM_EXIT_GRACE", 0.5)
    pods.run("pod")
    pods.guest("pod").hang_up()
    assert pods.failed("pod") == "the guest agent connection closed"


def test_exits_sent_just_before_the_vm_died_are_taken(pods):
    first = pods.run("pod", containers=2)
    pods.exit("pod", first, 0)
    pods.guest("pod").outbox.flush(10)  # on the wire: the host has it or will read it
    pods.engine.host.vm("pod").crash()
    pods.wait(lambda: pods.pod("pod").state == PodState.FAILED, "the pod to fail")
    assert pods.pod("pod").error == "the VM exited"
    one, two = pods.runtime.store.containers("pod")
    assert (one.state, one.exit_code) == (ContainerState.SUCCEEDED, 0)
    assert (two.state, two.exit_code) == (ContainerState.FAILED, None)


def test_a_guest_that_never_answers_holds_up_only_its_own_pod(pods, monkeypatch):
    monkeypatch.setattr(pod_session, "VM_EXIT_GRACE", 0.5)
    other = pods.run("other")
    cid = pods.run("hostile")
    guest = pods.guest("hostile")
    guest.silence("signal")
    errors: list[str] = []

    def stop() -> None:
        try:
            pods.runtime.containers.stop(cid, 60)
        except HyperError as e:
            errors.append(str(e))

    stopping = threading.Thread(target=stop)
    stopping.start()
    pods.wait(lambda: "signal" in guest.requests, "the stop signal to reach the guest")
    for _ in range(3):  # meanwhile the other pod is served
        pods.exec_works(other)
        assert {p.id for p in pods.runtime.store.pods()} == {"other", "hostile"}
    guest.hang_up()  # the guest finally goes: the waiting stop fails
    stopping.join(60)
    assert errors == ["guest agent connection closed during signal"]
    pods.failed("hostile")


def test_a_flood_with_a_client_that_reads_nothing_stays_bounded(pods, monkeypatch):
    monkeypatch.setattr(subscribers, "STALL_TIMEOUT", 1.0)
    other = pods.run("other")
    cid = pods.run("flood")
    stalled = Listener()  # an attached client that never reads
    pods.runtime.containers.attach(cid, stalled)
    process = pods.guest("flood").containers[cid].process
    chunk = b"z" * (64 << 10)
    total = 96 << 20  # twice what hyperd may hold: the window, the hold, the client's share
    tracemalloc.start()
    try:
        for _ in range(total // len(chunk)):
            process.write("stdout", chunk)  # the real outbox: waits for acknowledgements
            assert stalled._pending <= subscribers.PENDING_BYTES
        pods.settle("flood")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The guest's own outbox holds up to 8 MiB of it (in this process too).
    assert peak < 40 << 20, f"{peak >> 20} MiB held at once"
    items = []
    while not stalled.items.empty():
        items.append(stalled.take())
    assert items[-1] == ("exit", None, "stopped reading: its output was not taken for 1 s")
    assert sum(len(line["log"]) for line in pods.log_lines(cid)) == total  # all logged
    assert pods.pod("flood").state == PodState.RUNNING
    pods.exec_works(other)


def test_a_flood_beyond_flow_control_fails_the_pod(pods, monkeypatch):
    monkeypatch.setattr(subscribers, "STALL_TIMEOUT", 1.0)
    cid = pods.run("flood")
    pods.runtime.containers.attach(cid, Listener())  # read by nobody: the deliveries back up
    guest = pods.guest("flood")
    stream = guest.outbox.open_stream(cid, "stderr")
    frame = protocol.encode_frame(stream, b"z" * protocol.DATA_CHUNK)
    try:
        for _ in range(4096):  # 64 MiB, acknowledged or not
            guest.write_raw(frame)
    except OSError:
        pass  # hyperd closed the connection
    assert pods.failed("flood").startswith("guest agent misbehaved: output beyond flow control")


def test_nothing_the_guest_sends_names_a_host_path(pods, tmp_path):
    canary = tmp_path / "canary"
    canary.mkdir()
    cid = pods.run("hostile")
    logs = pods.runtime.files.log(pods.container(cid)).path.parent

    def snapshot():
        return tree(
            tmp_path, skip=lambda p: p.is_relative_to(logs) or p.name.startswith("state.db")
        )

    before = snapshot()
    guest = pods.guest("hostile")
    names = [
        str(canary / "x"),
        "../../../canary/x",
        f"{cid}/../../../../canary/x",
        f"{cid}/../x",
        "/etc/passwd",
        f"{cid}\x00x",
        cid + "/" + "a" * 5000,
    ]
    for name in names:
        pods.exit("hostile", name)
        pods.exit("hostile", cid, 0, exec_id=name)
        guest.outbox.data(guest.outbox.open_stream(name, "stdout"), b"where does this go?")
    own = guest.outbox.open_stream(cid, "stdout")
    guest.outbox.data(own, b"the container's own log")
    pods.settle("hostile")
    assert snapshot() == before
    assert list(canary.iterdir()) == []
    assert sorted(p.name for p in logs.iterdir()) == [f"{cid}.log"]
    assert [line["log"] for line in pods.log_lines(cid)] == ["the container's own log"]


def test_a_guest_that_stops_answering_fails_its_pod(pods, monkeypatch):
    monkeypatch.setattr(pod_session, "PROBE_TIMEOUT", 0.5)
    other = pods.run("other")
    cid = pods.run("mute")
    pods.unanswered_signal("mute", cid, ping_too=True)
    assert pods.failed("mute") == (
        "guest agent misbehaved: no answer to signal within 0.5 s, nor to a ping within 0.5 s"
    )
    assert pods.container(cid).state == ContainerState.FAILED
    pods.exec_works(other)


def test_one_request_unanswered_by_a_guest_that_answers_pings_fails_nothing(pods):
    cid = pods.run("slow")
    pods.unanswered_signal("slow", cid, ping_too=False)
    probing = pods.runtime.sessions["slow"]._probing
    pods.wait(lambda: not probing.locked(), "the probe's ping to be answered")
    assert pods.pod("slow").state == PodState.RUNNING
    pods.exec_works(cid)


def test_a_paused_guest_is_not_taken_for_a_silent_one(pods, monkeypatch):
    monkeypatch.setattr(pod_session, "PROBE_TIMEOUT", 0.5)
    cid = pods.run("paused")
    pods.runtime.pause_pod("paused")
    pods.unanswered_signal("paused", cid, ping_too=True)
    time.sleep(1)  # past the deadline a probe would have had
    assert pods.pod("paused").state == PodState.PAUSED
    pods.runtime.unpause_pod("paused")
    pods.exec_works(cid)


def test_an_exec_running_when_its_pod_fails_is_told(pods):
    cid = pods.run("pod")
    listener = Listener()
    pods.runtime.containers.exec(cid, ["sleep", "1000"], False, listener)
    assert listener.take() == ("started",)
    pods.engine.host.vm("pod").crash()
    assert pods.failed("pod") == "the VM exited"
    # Not a wait for ever: the guest that would have sent its exit is gone.
    assert listener.items.get(timeout=30) == ("exit", None, "pod pod failed: the VM exited")

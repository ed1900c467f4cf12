"""The host client against the real agent server, over socket pairs (no VM, no crun)."""

from __future__ import annotations

import queue
import socket
import threading

import pytest
from hypercontainer.agent.client import AgentClient
from hypercontainer.errors import AgentError, AgentTimeout
from hypercontainer.guest.agent import protocol
from hypercontainer.guest.agent.handlers import Handlers
from hypercontainer.guest.agent.outbox import Outbox
from hypercontainer.guest.agent.reaper import Reaper
from hypercontainer.guest.agent.runtime import Runtime
from hypercontainer.guest.agent.server import Server
from hypercontainer.guest.agent.settings import Settings
from hypercontainer.guest.agent.transport import SocketConnection


class Recorder:
    def __init__(self) -> None:
        self.events: queue.Queue[dict] = queue.Queue()
        self.output: queue.Queue[tuple[str, str, bytes]] = queue.Queue()

    def on_event(self, event: dict) -> None:
        self.events.put(event)

    def on_output(self, key: str, fd: str, data: bytes) -> None:
        self.output.put((key, fd, data))


class Agent:
    """The agent's server, runtime and outbox, taking host connections from a queue."""

    def __init__(self, state: str) -> None:
        self.outbox = Outbox()
        self.runtime = Runtime(Settings(state_dir=state), self.outbox, Reaper())
        self.server = Server(Handlers(self.runtime), self.outbox)
        self._connections: queue.Queue = queue.Queue()
        threading.Thread(
            target=self.server.serve, args=(iter(self._connections.get, None),), daemon=True
        ).start()

    def connect(self, recorder: Recorder) -> AgentClient:
        ours, theirs = socket.socketpair()
        self._connections.put(SocketConnection(ours))
        client = AgentClient(theirs, recorder.on_event, recorder.on_output)
        client.wait_ready(10)
        return client

    def stop(self) -> None:
        self._connections.put(None)


@pytest.fixture
def agent(tmp_path):
    agent = Agent(str(tmp_path / "state"))
    yield agent
    agent.stop()


def test_requests_and_one_line_errors(agent):
    with agent.connect(Recorder()) as client:
        client.ping()
        assert client.agent_version == protocol.VERSION
        assert client.state() == {"containers": {}, "hostname": "localhost"}
        with pytest.raises(AgentError, match="^no container c1$"):
            client.start_container("c1")
        with pytest.raises(AgentError, match="^create_container: field 'config' is required$"):
            client._call("create_container", 10)
        with pytest.raises(AgentError, match=r"^signal: no signal 99$"):
            client.signal("c1", 99)
        with pytest.raises(AgentError, match="is not a valid id"):
            client.start_container("../../etc")
        with pytest.raises(AgentError, match="^unknown request 'nope'$"):
            client._call("nope", 10)
        with pytest.raises(AgentError, match="has no open stdin"):
            client.write_stdin("c1", b"x")
        client.ping()  # still serving


def test_output_queued_while_no_host_reaches_a_new_client_attributed(agent):
    first = agent.connect(Recorder())
    first.close()
    # A process's streams opened and written while nobody listens.
    stream = agent.outbox.open_stream("c1", "stdout")
    agent.outbox.data(stream, b"hello while away")
    agent.outbox.event({"event": "exit", "key": "c1", "container": "c1", "exec": None, "code": 0})
    agent.outbox.end_stream(stream)

    recorder = Recorder()
    with agent.connect(recorder):
        assert recorder.output.get(timeout=10) == ("c1", "stdout", b"hello while away")
        assert recorder.events.get(timeout=10)["key"] == "c1"
        assert recorder.output.get(timeout=10) == ("c1", "stdout", b"")  # end of file


def test_replies_of_an_old_session_are_not_delivered_to_a_new_one(agent):
    old = agent.connect(Recorder())
    session = agent.outbox._session
    old.close()
    agent.outbox.reply(session, {"reply": 2, "ok": True, "result": "stale"})
    with agent.connect(Recorder()) as client:
        assert client.state()["containers"] == {}  # its id 2 got the real answer


def test_timeout_when_the_agent_never_answers():
    ours, theirs = socket.socketpair()
    client = AgentClient(theirs, lambda e: None, lambda k, f, d: None)
    with pytest.raises(AgentTimeout, match=r"^guest agent did not answer hello within 0.2 s$"):
        client.wait_ready(0.2)
    ours.close()
    assert client.closed.wait(5)
    with pytest.raises(AgentError, match="connection closed"):
        client.ping()


def test_a_guest_that_takes_nothing_makes_sends_time_out():
    ours, theirs = socket.socketpair()  # nobody ever reads `ours`
    client = AgentClient(theirs, lambda e: None, lambda k, f, d: None, send_timeout=0.5)
    with pytest.raises(AgentTimeout, match=r"^guest agent took nothing for 0.5 s$"):
        client.write_file("c1", "/big", b"x" * (8 << 20))
    assert client.closed.wait(5)  # a torn frame leaves the connection unusable
    ours.close()


def test_connection_closed_while_waiting(agent):
    ours, theirs = socket.socketpair()
    client = AgentClient(theirs, lambda e: None, lambda k, f, d: None)
    ours.close()
    with pytest.raises(AgentError, match="^guest agent connection closed during hello$"):
        client.wait_ready(10)


def test_callbacks_may_not_call_the_client(agent):
    errors = []
    called = threading.Event()

    def on_event(event):
        try:
            client.ping()
        except RuntimeError as exc:
            errors.append(str(exc))
        called.set()

    ours, theirs = socket.socketpair()
    agent._connections.put(SocketConnection(ours))
    client = AgentClient(theirs, on_event, lambda k, f, d: None)
    client.wait_ready(10)
    agent.outbox.event({"event": "exit", "key": "x"})
    assert called.wait(10)
    client.ping()  # the client still serves
    assert errors == ["agent client called from its own callback"]
    client.close()

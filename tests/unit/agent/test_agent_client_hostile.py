"""The host's agent client against a guest agent that misbehaves (tests/support/fake_agent.py).

What breaks the protocol ends the connection with `failure` saying why, and fails
whatever request waited; what a correct agent may cause, or the host has no use
for, is ignored and counted; nothing the guest sends is buffered without bound.
"""

from __future__ import annotations

import queue
import socket
import struct
import threading

import pytest
from hypercontainer.agent import client as agent_client
from hypercontainer.agent.client import AgentClient, one_line
from hypercontainer.errors import AgentError, AgentTimeout
from hypercontainer.guest.agent import protocol

from tests.support.fake_agent import FakeAgent, ok


class Host:
    """The client and what its callbacks received."""

    def __init__(self, answer=ok, window=agent_client.OUTPUT_HOLD * 8, on_output=None) -> None:
        ours, theirs = socket.socketpair()
        self.agent = FakeAgent(ours, answer, window)
        self.events: queue.Queue[dict] = queue.Queue()
        self.output: queue.Queue[tuple[str, str, bytes]] = queue.Queue()
        self.client = AgentClient(theirs, self.events.put, on_output or self._on_output)
        self.client.wait_ready(10)

    def _on_output(self, key: str, fd: str, data: bytes) -> None:
        self.output.put((key, fd, data))

    def ended_with(self, reason: str) -> str:
        assert self.client.closed.wait(10), "the connection did not end"
        assert self.client.failure is not None and reason in self.client.failure
        with pytest.raises(AgentError, match="closed"):
            self.client.ping()
        return self.client.failure


@pytest.fixture
def host():
    made: list[Host] = []

    def make(**kwargs) -> Host:
        made.append(Host(**kwargs))
        return made[-1]

    yield make
    for one in made:
        one.client.close()
        one.agent.close()


def silent(agent, request):
    return None if request["op"] == "state" else ok(agent, request)


@pytest.mark.parametrize(
    "frame, reason",
    [
        (protocol.encode_frame(0, b"{not json"), "not JSON"),
        (protocol.encode_frame(0, b"[1, 2]"), "not a JSON object"),
        (protocol.encode_frame(0, b"\xff\xfe"), "not JSON"),
        (struct.pack(">II", 0, protocol.MAX_PAYLOAD + 1), "exceeds"),
        (struct.pack(">II", 5, 0xFFFFFFFF), "exceeds"),
        (protocol.encode_message({"reply": "1", "ok": True}), "without a request number"),
        (protocol.encode_message({"reply": True, "ok": True}), "without a request number"),
        (protocol.encode_message({"reply": [2], "ok": True}), "without a request number"),
        (
            protocol.encode_message({"event": "stream", "stream": "x", "key": "c", "fd": "stdout"}),
            "malformed stream announcement",
        ),
        (
            protocol.encode_message({"event": "stream", "stream": 3, "key": "c", "fd": "../x"}),
            "malformed stream announcement",
        ),
        (
            protocol.encode_message({"event": "stream", "stream": 0, "key": "c", "fd": "stdout"}),
            "malformed stream announcement",
        ),
    ],
)
def test_a_frame_that_breaks_the_protocol_ends_the_connection(host, frame, reason):
    one = host(answer=silent)
    waiting = threading.Thread(target=lambda: pytest.raises(AgentError, one.client.state))
    waiting.start()
    one.agent.requests.get(timeout=10)  # the state request is pending
    one.agent.raw(frame)
    waiting.join(10)
    assert not waiting.is_alive(), "the pending request was not failed"
    one.ended_with(reason)


def test_a_connection_cut_in_the_middle_of_a_frame_is_a_violation(host):
    one = host()
    one.agent.raw(protocol.encode_message({"event": "exit", "key": "c"})[:7])
    one.agent.close()
    one.ended_with("in the middle of a frame")


def test_a_clean_end_of_the_connection_is_not_a_violation(host):
    one = host()
    one.agent.close()
    assert one.client.finished.wait(10)
    assert one.client.failure is None


def test_a_malformed_handshake_ends_the_connection():
    ours, theirs = socket.socketpair()

    def answer_hello_badly():
        hello = protocol.Decoder(accept=lambda s, p: True).feed(ours.recv(1 << 16))[0]
        message = protocol.decode_message(hello[1])
        result = {"nonce": message["nonce"], "seq": "one", "streams": []}
        ours.sendall(
            protocol.SYNC
            + protocol.encode_message({"reply": message["id"], "ok": True, "result": result})
        )

    threading.Thread(target=answer_hello_badly, daemon=True).start()
    client = AgentClient(theirs, lambda e: None, lambda k, f, d: None)
    with pytest.raises(AgentError, match="^guest agent misbehaved: malformed handshake$"):
        client.wait_ready(10)
    assert client.failure == "malformed handshake"
    ours.close()


def test_stray_replies_unknown_messages_and_repeated_handshakes_are_ignored(host):
    one = host()
    hello_id = one.client._hello_id
    one.agent.message({"reply": 999, "ok": True, "result": "never asked"})
    one.agent.message(
        {
            "reply": hello_id,
            "ok": True,
            "result": {"seq": 1, "streams": [{"stream": 9, "key": "c", "fd": "stdout"}]},
        }
    )
    one.agent.message({"what": "is this"})
    one.agent.message({"event": 42})
    one.agent.event(event="reboot-the-host", path="/etc/passwd")
    one.client.ping()  # still serving, in order after all of it
    assert one.client.oddities == 4
    assert one.events.get(timeout=10)["event"] == "reboot-the-host"  # for the session to judge
    one.agent.output(9, b"on the stream the second handshake named")
    one.client.ping()
    assert one.output.empty() and one.client.oddities == 5


def test_a_request_never_answered_times_out_and_others_are_still_answered(host):
    one = host(answer=silent)
    with pytest.raises(AgentTimeout, match=r"^guest agent did not answer state within 0.3 s$"):
        one.client.state(timeout=0.3)
    one.client.ping()
    assert one.client.failure is None


def test_a_late_reply_to_a_request_that_timed_out_is_ignored(host):
    one = host(answer=silent)
    with pytest.raises(AgentTimeout):
        one.client.state(timeout=0.2)
    request = one.agent.requests.get(timeout=10)
    assert request["op"] == "state"
    one.agent.message({"reply": request["id"], "ok": True, "result": {"containers": {}}})
    one.client.ping()
    assert one.client.oddities == 1 and one.client.failure is None


@pytest.mark.parametrize(
    "result",
    [
        None,
        [],
        "x",
        {"containers": []},
        {"containers": {"c": "running"}},
        {"hostname": "h"},
    ],
)
def test_a_malformed_state_is_an_error_of_that_request(host, result):
    one = host(answer=lambda agent, r: {"reply": r["id"], "ok": True, "result": result})
    with pytest.raises(AgentError, match="^guest agent sent a malformed state$"):
        one.client.state()


@pytest.mark.parametrize(
    "error, expected",
    [
        ("line one\nline two\r\n\x1b[2Jcleared", "line one line two [2Jcleared"),
        ("x" * 100_000, "x" * agent_client.ERROR_CHARS + "..."),
        (["not", "text"], "ping failed"),
        ("", "ping failed"),
        ("\x00\x07\t", "ping failed"),
    ],
)
def test_a_guest_error_reaches_the_user_as_one_short_printable_line(host, error, expected):
    one = host(answer=lambda agent, r: {"reply": r["id"], "ok": False, "error": error})
    with pytest.raises(AgentError) as raised:
        one.client.ping()
    assert str(raised.value) == expected


def test_a_reply_that_is_not_clearly_ok_is_a_failure(host):
    one = host(answer=lambda agent, r: {"reply": r["id"], "ok": "yes", "result": {}})
    with pytest.raises(AgentError, match="^ping failed$"):
        one.client.ping()


def test_more_streams_than_allowed_end_the_connection(host, monkeypatch):
    monkeypatch.setattr(agent_client, "MAX_STREAMS", 50)
    one = host()
    for _ in range(51):
        one.agent.open_stream("c", "stdout")
    one.ended_with("more than 50 streams open")


def test_one_line():
    assert one_line("a\n b\tc") == "a b c"
    assert one_line(None) == ""


# -- floods ---------------------------------------------------------------------


class SlowReader:
    """An output callback that takes one chunk each time the test allows it."""

    def __init__(self) -> None:
        self.allowed = threading.Semaphore(0)
        self.received = bytearray()

    def __call__(self, key: str, fd: str, data: bytes) -> None:
        self.allowed.acquire()
        self.received += data


def test_a_slow_reader_holds_back_acknowledgements_and_an_honest_flood_waits(host):
    reader = SlowReader()
    window = 4 << 20  # an agent honouring flow control with this much unacknowledged
    one = host(window=window, on_output=reader)
    stream = one.agent.open_stream("c", "stdout")
    flood = bytes(range(256)) * (48 << 12)  # 12 MiB
    sender = threading.Thread(target=one.agent.output, args=(stream, flood), daemon=True)
    sender.start()
    peak = 0
    while len(reader.received) < len(flood):
        peak = max(peak, one.client._deliveries.waiting)
        reader.allowed.release()
        if not sender.is_alive() and one.client.finished.is_set():
            break
    sender.join(30)
    assert bytes(reader.received) == flood
    assert one.client.failure is None
    # What waited for delivery never exceeded the agent's window and the hold.
    assert peak <= window + agent_client.OUTPUT_HOLD + (64 << 10)


def test_a_flood_that_ignores_flow_control_ends_the_connection_with_memory_bounded(host):
    reader = SlowReader()  # takes nothing
    one = host(window=None, on_output=reader)
    stream = one.agent.open_stream("c", "stdout")
    chunk = b"y" * protocol.DATA_CHUNK
    try:
        for _ in range(2 * agent_client.BACKLOG_LIMIT // len(chunk)):
            one.agent.raw(protocol.encode_frame(stream, chunk))
    except OSError:
        pass  # the host closed the connection: the point
    one.ended_with("output beyond flow control")
    assert one.client._deliveries.waiting <= agent_client.BACKLOG_LIMIT
    for _ in range(agent_client.BACKLOG_LIMIT // len(chunk) + 1):
        reader.allowed.release()  # let the deliveries end
    assert one.client.finished.wait(30)


def test_a_flood_of_events_is_bounded_like_output(host, monkeypatch):
    monkeypatch.setattr(agent_client, "BACKLOG_LIMIT", 1 << 20)
    blocked = threading.Event()
    ours, theirs = socket.socketpair()
    agent = FakeAgent(ours, ok, window=None)
    client = AgentClient(theirs, lambda event: blocked.wait(), lambda k, f, d: None)
    try:
        client.wait_ready(10)
        event = protocol.encode_message({"event": "exit", "key": "c", "pad": "z" * 1000})
        try:
            for _ in range(4000):
                agent.raw(event)
        except OSError:
            pass
        assert client.closed.wait(10)  # the connection ended...
        assert not client.finished.is_set()  # ...while a delivery still blocks
        assert "beyond flow control" in client.failure
    finally:
        blocked.set()
        client.close()
        agent.close()

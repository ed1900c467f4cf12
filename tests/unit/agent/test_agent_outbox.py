"""The agent's outbox: nothing lost while no host is connected, bounded, session-aware."""

from __future__ import annotations

import threading

import pytest
from hypercontainer.guest.agent import protocol
from hypercontainer.guest.agent.outbox import Outbox


class Host:
    """A connection that records frames (decoded after the handshake) or fails."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.decoder = protocol.Decoder(accept=lambda stream, payload: True)
        self.frames: list[tuple[int, bytes]] = []
        self.changed = threading.Condition()

    def write(self, data: bytes) -> None:
        if self.fail:
            raise BrokenPipeError
        with self.changed:
            self.frames += self.decoder.feed(data)
            self.changed.notify_all()

    def wait_for(self, count: int) -> list[tuple[int, bytes]]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.frames) >= count, 10)
            return list(self.frames)


@pytest.fixture
def outbox():
    box = Outbox(limit=100)
    threading.Thread(target=box.run_writer, daemon=True).start()
    yield box
    box.close()


def test_everything_waits_for_a_host_then_comes_after_the_handshake(outbox):
    stream = outbox.open_stream("c1", "stdout")
    outbox.data(stream, b"hello")
    outbox.event({"event": "exit", "key": "c1"})
    host = Host()
    outbox.begin(host.write, {"reply": 1, "ok": True, "result": {"nonce": "n"}})
    frames = host.wait_for(4)
    handshake = protocol.decode_message(frames[0][1])
    assert handshake["result"]["streams"] == [{"stream": stream, "key": "c1", "fd": "stdout"}]
    assert protocol.decode_message(frames[1][1])["event"] == "stream"
    assert frames[2] == (stream, b"hello")
    assert protocol.decode_message(frames[3][1])["event"] == "exit"


def seq_of(frames: list[tuple[int, bytes]]) -> int:
    """The number the handshake (the first frame) gives the frame after it."""
    return protocol.decode_message(frames[0][1])["result"]["seq"]


def test_a_stream_leaves_the_table_once_its_end_is_acknowledged(outbox):
    stream = outbox.open_stream("c1", "stderr")
    outbox.end_stream(stream)
    first = Host()
    outbox.begin(first.write, {"reply": 1, "ok": True})
    frames = first.wait_for(3)
    outbox.acknowledge(seq_of(frames) + 1)  # the announcement and the end of file
    second = Host()
    outbox.begin(second.write, {"reply": 1, "ok": True})
    frames = second.wait_for(1)
    assert protocol.decode_message(frames[0][1])["result"]["streams"] == []


def test_what_a_host_did_not_acknowledge_goes_to_the_next_one(outbox):
    stream = outbox.open_stream("c1", "stdout")
    outbox.data(stream, b"one")
    outbox.data(stream, b"two")
    first = Host()
    outbox.begin(first.write, {"reply": 1, "ok": True})
    frames = first.wait_for(4)
    assert frames[2:] == [(stream, b"one"), (stream, b"two")]
    outbox.acknowledge(seq_of(frames) + 1)  # the announcement and "one"
    second = Host()
    outbox.begin(second.write, {"reply": 1, "ok": True})
    frames = second.wait_for(2)
    assert frames[1:] == [(stream, b"two")]
    assert seq_of(frames) == 3
    handshake = protocol.decode_message(frames[0][1])
    assert handshake["result"]["streams"] == [{"stream": stream, "key": "c1", "fd": "stdout"}]


def test_a_frame_acknowledged_while_it_was_being_written_is_not_sent_again(outbox):
    stream = outbox.open_stream("c1", "stdout")
    first = Host()
    outbox.begin(first.write, {"reply": 1, "ok": True})
    first_seq = seq_of(first.wait_for(2))

    fast = Host()

    def write_and_acknowledge(data: bytes) -> None:
        # A fast host: its acknowledgement is handled before write() has returned.
        fast.write(data)
        outbox.acknowledge(first_seq + 1)  # the announcement and "one"

    outbox.begin(write_and_acknowledge, {"reply": 1, "ok": True})
    outbox.data(stream, b"one")
    assert outbox.flush(10)
    second = Host()
    outbox.begin(second.write, {"reply": 1, "ok": True})
    frames = second.wait_for(1)
    outbox.data(stream, b"two")
    assert second.wait_for(2)[1:] == [(stream, b"two")]
    assert seq_of(frames) == first_seq + 2


def test_output_beyond_the_limit_waits_for_acknowledgement(outbox):
    stream = outbox.open_stream("c1", "stdout")
    outbox.data(stream, b"a" * 80)
    producer = threading.Thread(target=outbox.data, args=(stream, b"b" * 80))
    producer.start()
    producer.join(0.3)
    assert producer.is_alive()  # blocked: 160 bytes would exceed the limit of 100
    host = Host()
    outbox.begin(host.write, {"reply": 1, "ok": True})
    frames = host.wait_for(3)
    assert frames[2] == (stream, b"a" * 80)
    outbox.acknowledge(seq_of(frames) + 1)
    producer.join(10)
    assert not producer.is_alive()
    assert host.wait_for(4)[3] == (stream, b"b" * 80)


def test_a_failed_write_is_kept_for_the_next_host(outbox):
    broken = Host(fail=True)
    outbox.begin(broken.write, {"reply": 1, "ok": True})
    outbox.event({"event": "exit", "key": "c1"})
    assert outbox.flush(10)
    host = Host()
    outbox.begin(host.write, {"reply": 1, "ok": True})
    frames = host.wait_for(2)
    assert protocol.decode_message(frames[1][1]) == {"event": "exit", "key": "c1"}


def test_replies_go_only_to_their_own_session(outbox):
    first = Host()
    session = outbox.begin(first.write, {"reply": 1, "ok": True})
    first.wait_for(1)
    outbox.end(session)
    outbox.reply(session, {"reply": 7, "ok": True})
    outbox.event({"event": "marker"})
    second = Host()
    outbox.begin(second.write, {"reply": 1, "ok": True})
    frames = second.wait_for(2)
    assert [protocol.decode_message(p) for _, p in frames[1:]] == [{"event": "marker"}]

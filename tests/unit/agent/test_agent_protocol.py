"""Framing: frames in pieces of any size, hostile lengths, and synchronising on a handshake."""

from __future__ import annotations

import json

import pytest
from hypercontainer.guest.agent import protocol
from hypercontainer.guest.agent.protocol import Decoder, ProtocolError


def frames_of(decoder: Decoder, data: bytes, piece: int) -> list[tuple[int, bytes]]:
    out = []
    for start in range(0, len(data), piece):
        out += decoder.feed(data[start : start + piece])
    return out


@pytest.mark.parametrize("piece", [1, 3, 8, 1000])
def test_frames_survive_any_split(piece):
    wire = (
        protocol.encode_message({"id": 1, "op": "ping"})
        + protocol.encode_frame(7, b"hello")
        + protocol.encode_frame(7, b"")
        + protocol.encode_frame(9, bytes(range(256)) * 10)
    )
    frames = frames_of(Decoder(), wire, piece)
    assert frames == [
        (0, b'{"id":1,"op":"ping"}'),
        (7, b"hello"),
        (7, b""),
        (9, bytes(range(256)) * 10),
    ]


def test_header_is_big_endian_stream_then_length():
    assert protocol.encode_frame(0x01020304, b"ab") == b"\x01\x02\x03\x04\x00\x00\x00\x02ab"


def test_oversized_length_is_refused_before_reading_the_payload():
    decoder = Decoder(max_payload=16)
    with pytest.raises(ProtocolError, match="frame of 17 bytes exceeds 16"):
        decoder.feed(protocol.HEADER.pack(1, 17))
    with pytest.raises(ProtocolError, match="exceeds"):
        Decoder().feed(protocol.HEADER.pack(0, 0xFFFFFFFF))


def test_encoding_an_oversized_frame_fails():
    with pytest.raises(ProtocolError):
        protocol.encode_frame(1, b"x" * (protocol.MAX_PAYLOAD + 1))


def test_truncated_frame_waits_and_keeps_its_bytes():
    decoder = Decoder()
    wire = protocol.encode_frame(3, b"abcdef")
    assert decoder.feed(wire[:-2]) == []
    assert decoder.pending == len(wire) - 2
    assert decoder.feed(wire[-2:]) == [(3, b"abcdef")]
    assert decoder.pending == 0


def test_control_payload_must_be_a_json_object():
    assert protocol.decode_message(b'{"a":1}') == {"a": 1}
    for bad in (b"[1]", b"{", b"\xff"):
        with pytest.raises(ProtocolError):
            protocol.decode_message(bad)


def hello_reply(nonce: str) -> bytes:
    return protocol.encode_message({"reply": 1, "ok": True, "result": {"nonce": nonce}})


def nonce_is(nonce: str):
    def accept(stream: int, payload: bytes) -> bool:
        return stream == 0 and json.loads(payload).get("result", {}).get("nonce") == nonce

    return accept


@pytest.mark.parametrize("piece", [1, 5, 4096])
def test_sync_skips_stale_bytes_and_foreign_handshakes(piece):
    # What a new connection may see first: the tail of a frame meant for the
    # previous host, a forged marker and handshake printed by a container, a
    # marker whose "frame" claims to be long, then the real thing.
    forged = protocol.SYNC + hello_reply("not-yours")
    long_claim = protocol.SYNC + protocol.HEADER.pack(0, 5000) + b"{"
    wire = (
        b"\x00\x07tail-of-old-frame"
        + forged
        + long_claim
        + protocol.SYNC
        + hello_reply("n1")
        + protocol.encode_frame(5, b"data")
    )
    frames = frames_of(Decoder(accept=nonce_is("n1")), wire, piece)
    assert frames == [(0, hello_reply("n1")[8:]), (5, b"data")]


def test_sync_marker_with_an_impossible_length_is_skipped():
    wire = protocol.SYNC + protocol.HEADER.pack(0, 0xFFFFFFF0) + protocol.SYNC + hello_reply("n1")
    assert Decoder(accept=nonce_is("n1")).feed(wire) == [(0, hello_reply("n1")[8:])]


def test_unsynced_decoder_keeps_only_a_possible_marker_prefix():
    decoder = Decoder(accept=nonce_is("n1"))
    assert decoder.feed(b"x" * 10000 + protocol.SYNC[:5]) == []
    assert decoder.pending < len(protocol.SYNC)
    assert decoder.feed(protocol.SYNC[5:] + hello_reply("n1")) != []
    assert decoder.synced


def test_process_keys():
    assert protocol.process_key("c1") == "c1"
    assert protocol.process_key("c1", "e1") == "c1/e1"


def hello(nonce: str) -> bytes:
    return protocol.encode_message({"id": 1, "op": "hello", "nonce": nonce})


def is_hello(stream: int, payload: bytes) -> bool:
    return stream == 0 and json.loads(payload).get("op") == "hello"


@pytest.mark.parametrize("piece", [1, 7, 4096])
def test_agent_side_takes_a_new_host_at_a_frame_boundary(piece):
    # On virtio-serial a second host can follow the first with no hang-up seen.
    wire = (
        protocol.SYNC
        + hello("a")
        + protocol.encode_frame(3, b"stdin")
        + protocol.SYNC
        + hello("b")
        + protocol.encode_frame(3, b"more")
    )
    frames = frames_of(Decoder(accept=is_hello, resync=True), wire, piece)
    assert [json.loads(p).get("nonce") if s == 0 else p for s, p in frames] == [
        "a",
        b"stdin",
        "b",
        b"more",
    ]


@pytest.mark.parametrize("piece", [1, 4096])
def test_agent_side_recovers_from_a_host_that_died_mid_frame(piece):
    torn = protocol.encode_frame(3, b"x" * 100)[:50]  # promised 100 bytes, sent 42
    wire = (
        protocol.SYNC
        + hello("a")
        + torn
        + protocol.SYNC
        + hello("b")
        + protocol.HEADER.pack(0, 0xFFFFFFFF)
        + protocol.SYNC
        + hello("c")
    )
    frames = frames_of(Decoder(accept=is_hello, resync=True), wire, piece)
    assert [json.loads(p)["nonce"] for _, p in frames] == ["a", "b", "c"]

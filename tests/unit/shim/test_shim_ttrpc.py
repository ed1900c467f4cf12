"""ttrpc framing, server and client: the wire format, and what a bad peer gets."""

from __future__ import annotations

import io
import socket
import struct
import threading

import pytest
from hypercontainer.shim import ttrpc_frame as frames
from hypercontainer.shim.protogen import shim_protos
from hypercontainer.shim.status import Code, RpcError
from hypercontainer.shim.ttrpc_client import Client
from hypercontainer.shim.ttrpc_server import Server, service_methods

TASK = "containerd.task.v2.Task"
P = shim_protos()


# -- framing -------------------------------------------------------------------------


def test_a_frame_is_length_stream_type_flags_then_data() -> None:
    assert frames.encode(7, frames.REQUEST, b"ab", flags=frames.FLAG_REMOTE_CLOSED) == (
        b"\x00\x00\x00\x02\x00\x00\x00\x07\x01\x01ab"
    )


def test_frames_read_back_in_order_and_end_cleanly_between_frames() -> None:
    stream = io.BytesIO(
        frames.encode(1, frames.REQUEST, b"one") + frames.encode(3, frames.RESPONSE, b"")
    )
    assert frames.read_frame(stream) == frames.Frame(1, frames.REQUEST, 0, b"one")
    assert frames.read_frame(stream) == frames.Frame(3, frames.RESPONSE, 0, b"")
    assert frames.read_frame(stream) is None


@pytest.mark.parametrize("cut", [3, 10, 12])
def test_a_stream_cut_inside_a_frame_is_an_error(cut: int) -> None:
    data = frames.encode(1, frames.REQUEST, b"abcdef")[:cut]
    with pytest.raises(frames.FrameError, match="inside a frame"):
        frames.read_frame(io.BytesIO(data))


def test_an_oversized_frame_is_skipped_whole_and_the_next_one_is_read() -> None:
    big = frames.MAX_DATA + 1
    stream = io.BytesIO(
        struct.pack(">IIBB", big, 5, frames.REQUEST, 0)
        + b"x" * big
        + frames.encode(7, frames.REQUEST, b"next")
    )
    with pytest.raises(frames.FrameTooLarge) as caught:
        frames.read_frame(stream)
    assert (caught.value.stream_id, caught.value.length) == (5, big)
    assert frames.read_frame(stream).data == b"next"


def test_nothing_larger_than_the_maximum_is_sent() -> None:
    with pytest.raises(frames.FrameTooLarge):
        frames.encode(1, frames.RESPONSE, b"x" * (frames.MAX_DATA + 1))


# -- server and client -----------------------------------------------------------------


class FakeTasks:
    """Just enough of a Task service to exercise the server."""

    def __init__(self) -> None:
        self.released = threading.Event()

    def Connect(self, request):  # noqa: N802 (the protobuf method names)
        return P.message("containerd.task.v2.ConnectResponse")(shim_pid=42, version=request.id)

    def Wait(self, request):  # noqa: N802
        assert self.released.wait(10)
        return P.message("containerd.task.v2.WaitResponse")(exit_status=3)

    def Kill(self, request):  # noqa: N802
        self.released.set()
        return P.message("google.protobuf.Empty")()

    def State(self, request):  # noqa: N802
        raise RpcError(Code.NOT_FOUND, f"task {request.id}: not found")

    def Pids(self, request):  # noqa: N802
        raise ValueError("a bug")


@pytest.fixture
def server(tmp_path):
    service = FakeTasks()
    server = Server(P, {TASK: service_methods(P, TASK, service)})
    path = str(tmp_path / "s.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()
    thread = threading.Thread(target=server.serve, args=(listener,), daemon=True)
    thread.start()
    yield path
    server.close()
    listener.close()


def request(name: str, **fields):
    return P.message(f"containerd.task.v2.{name}")(**fields)


def test_a_unary_call_gets_its_response(server) -> None:
    with Client(P, "unix://" + server) as client:
        answer = client.call(TASK, "Connect", request("ConnectRequest", id="abc"))
    assert (answer.shim_pid, answer.version) == (42, "abc")


def test_calls_on_one_connection_run_at_once(server) -> None:
    with Client(P, server) as client:
        results = []
        waiter = threading.Thread(
            target=lambda: results.append(
                client.call(TASK, "Wait", request("WaitRequest", id="t"), timeout=10)
            )
        )
        waiter.start()
        client.call(TASK, "Kill", request("KillRequest", id="t", signal=9), timeout=10)
        waiter.join(10)
    assert results[0].exit_status == 3


def test_errors_carry_their_grpc_code(server) -> None:
    with Client(P, server) as client:
        with pytest.raises(RpcError) as missing:
            client.call(TASK, "State", request("StateRequest", id="nope"))
        with pytest.raises(RpcError) as bug:
            client.call(TASK, "Pids", request("PidsRequest", id="x"))
        with pytest.raises(RpcError) as absent:  # in the service, not implemented here
            client.call(TASK, "Checkpoint", request("CheckpointTaskRequest", id="x"))
        assert client.call(TASK, "Connect", request("ConnectRequest")).shim_pid == 42
    assert (missing.value.code, missing.value.message) == (Code.NOT_FOUND, "task nope: not found")
    assert bug.value.code == Code.INTERNAL and "a bug" in bug.value.message
    assert absent.value.code == Code.UNIMPLEMENTED


class RawPeer:
    """A connection that sends whatever bytes a test wants and reads frames back."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.reader = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def status(self) -> tuple[int, int, str]:
        frame = frames.read_frame(self.reader)
        response = P.message("ttrpc.Response").FromString(frame.data)
        return frame.stream_id, response.status.code, response.status.message

    def request(self, stream_id: int, service: str, method: str, payload: bytes) -> None:
        data = P.message("ttrpc.Request")(
            service=service, method=method, payload=payload
        ).SerializeToString()
        self.send(frames.encode(stream_id, frames.REQUEST, data))


def test_unknown_services_and_methods_are_unimplemented_and_serving_goes_on(server) -> None:
    peer = RawPeer(server)
    peer.request(1, "containerd.task.v3.Task", "Create", b"")
    peer.request(3, TASK, "Explode", b"")
    peer.request(5, TASK, "Connect", request("ConnectRequest", id="z").SerializeToString())
    answers = {peer.status() for _ in range(3)}
    codes = {stream: code for stream, code, _ in answers}
    assert codes == {1: Code.UNIMPLEMENTED, 3: Code.UNIMPLEMENTED, 5: 0}


def test_malformed_requests_are_refused_on_their_stream(server) -> None:
    peer = RawPeer(server)
    peer.send(frames.encode(1, frames.REQUEST, b"\xff\xff\xff\xff"))  # not a ttrpc.Request
    assert peer.status()[:2] == (1, Code.INVALID_ARGUMENT)
    peer.request(3, TASK, "Connect", b"\x0a\xff")  # payload not a ConnectRequest
    assert peer.status()[:2] == (3, Code.INVALID_ARGUMENT)
    peer.send(frames.encode(4, frames.REQUEST, b""))  # even ids are the server's
    assert peer.status()[:2] == (4, Code.INVALID_ARGUMENT)
    peer.send(frames.encode(5, frames.DATA, b"x"))  # streams are not served
    assert peer.status()[:2] == (5, Code.UNIMPLEMENTED)
    peer.request(7, TASK, "Connect", b"")
    assert peer.status()[:2] == (7, 0)


def test_an_oversized_frame_is_refused_and_the_connection_stays_usable(server) -> None:
    peer = RawPeer(server)
    big = frames.MAX_DATA + 10
    peer.send(struct.pack(">IIBB", big, 9, frames.REQUEST, 0) + b"\0" * big)
    stream, code, message = peer.status()
    assert (stream, code) == (9, Code.RESOURCE_EXHAUSTED) and "exceeds" in message
    peer.request(11, TASK, "Connect", b"")
    assert peer.status()[:2] == (11, 0)


def test_bytes_that_are_not_ttrpc_cost_only_their_own_connection(server) -> None:
    garbage = RawPeer(server)
    garbage.send(b"GET / HTTP/1.1\r\n\r\n")  # a 1.2 GB "length": the server waits for it
    with Client(P, server) as client:
        assert client.call(TASK, "Connect", request("ConnectRequest")).shim_pid == 42
    garbage.sock.close()
    with Client(P, server) as client:  # the cut frame ended only that connection
        assert client.call(TASK, "Connect", request("ConnectRequest")).shim_pid == 42

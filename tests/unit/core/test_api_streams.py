"""The server side of attach/exec streams (core/api/streams.py), over a socket pair."""

from __future__ import annotations

import socket
import threading
import time

from hypercontainer.api import streams
from hypercontainer.errors import UserError
from hypercontainer.guest.agent.protocol import Decoder, encode_frame
from hypercontainer.subscribers import Listener


class Input:
    """Records what reaches the process's stdin."""

    def __init__(self) -> None:
        self.data, self.closed = b"", False
        self.sizes: list[tuple[int, int]] = []
        self.signals: list[int] = []

    def stdin(self) -> streams.Stdin:
        def write(data: bytes) -> None:
            self.data += data

        def close() -> None:
            self.closed = True

        def signal(signum: int) -> None:
            if signum == 99:
                raise UserError("unknown signal 99")  # refused, the stream goes on
            self.signals.append(signum)

        return streams.Stdin(
            write, close, lambda rows, cols: self.sizes.append((rows, cols)), signal
        )


class Ended(threading.Event):
    """How the stream ended, as told to its owner."""

    outcome = ""

    def __call__(self, outcome: str) -> None:
        self.outcome = outcome
        self.set()


def serving(listener: Listener, stdin: streams.Stdin):
    server, client = socket.socketpair()
    ended = Ended()
    thread = threading.Thread(
        target=streams.serve,
        args=(server, server.makefile("rb"), listener, stdin, ended),
        daemon=True,
    )
    thread.start()
    return client, thread, ended


def frames(sock: socket.socket) -> list[tuple[int, bytes]]:
    decoder, received = Decoder(), []
    while data := sock.recv(65536):
        received.extend(decoder.feed(data))
    return received


def test_output_and_exit_reach_the_client_and_input_reaches_the_process() -> None:
    listener, given = Listener(), Input()
    client, thread, ended = serving(listener, given.stdin())
    listener.started()
    client.sendall(encode_frame(streams.STDIN, b"hello") + encode_frame(streams.STDIN, b""))
    deadline = time.monotonic() + 5
    while not given.closed and time.monotonic() < deadline:  # input is passed on by its own thread
        time.sleep(0.01)
    listener.output("stdout", b"out")
    listener.output("stderr", b"err")
    listener.exit(3)
    thread.join(5)
    assert frames(client) == [
        (streams.CONTROL, b'{"started": true}'),
        (streams.STDOUT, b"out"),
        (streams.STDERR, b"err"),
        (streams.CONTROL, b'{"exit": 3}'),
    ]
    assert ended.outcome == streams.EXITED
    assert given.data == b"hello" and given.closed


def test_a_client_that_hangs_up_ends_the_stream_without_any_output() -> None:
    listener = Listener()
    client, thread, ended = serving(listener, Input().stdin())
    listener.started()
    assert Decoder().feed(client.recv(65536)) == [(streams.CONTROL, b'{"started": true}')]
    client.close()  # no output and no exit will come: the process runs on
    thread.join(5)
    assert not thread.is_alive() and ended.outcome == streams.GONE


def control(message: bytes) -> bytes:
    return encode_frame(streams.CONTROL, message)


def test_resize_signal_and_detach_from_the_client() -> None:
    listener, given = Listener(), Input()
    client, thread, ended = serving(listener, given.stdin())
    listener.started()
    client.sendall(
        control(b'{"resize": [40, 120]}')
        + control(b'{"signal": 99}')
        + control(b'{"signal": 2}')
        + control(b'{"detach": true}')
    )
    client.close()
    thread.join(5)
    assert given.sizes == [(40, 120)] and given.signals == [2]
    assert ended.outcome == streams.DETACHED


def test_a_malformed_control_frame_ends_the_input_as_a_hang_up() -> None:
    listener, given = Listener(), Input()
    client, thread, ended = serving(listener, given.stdin())
    listener.started()
    client.sendall(control(b"[1, 2]") + encode_frame(streams.STDIN, b"never"))
    thread.join(5)
    assert ended.outcome == streams.GONE and given.data == b""

"""The server side of attach/exec streams (core/api/streams.py), over a socket pair."""

from __future__ import annotations

import socket
import threading
import time

from hypercontainer.api import streams
from hypercontainer.guest.agent.protocol import Decoder, encode_frame
from hypercontainer.subscribers import Listener


class Input:
    """Records what reaches the process's stdin."""

    def __init__(self) -> None:
        self.data, self.closed = b"", False

    def stdin(self) -> streams.Stdin:
        def write(data: bytes) -> None:
            self.data += data

        def close() -> None:
            self.closed = True

        return streams.Stdin(write, close, lambda rows, cols: None)


def serving(listener: Listener, stdin: streams.Stdin):
    server, client = socket.socketpair()
    ended = threading.Event()
    thread = threading.Thread(
        target=streams.serve,
        args=(server, server.makefile("rb"), listener, stdin, ended.set), daemon=True)
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
    assert ended.is_set()
    assert given.data == b"hello" and given.closed


def test_a_client_that_hangs_up_ends_the_stream_without_any_output() -> None:
    listener = Listener()
    client, thread, ended = serving(listener, Input().stdin())
    listener.started()
    assert Decoder().feed(client.recv(65536)) == [(streams.CONTROL, b'{"started": true}')]
    client.close()  # no output and no exit will come: the process runs on
    thread.join(5)
    assert not thread.is_alive() and ended.is_set()

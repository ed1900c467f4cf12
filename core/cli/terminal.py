"""hyperctl's end of an attach or exec stream: the user's terminal and the framed socket.

The framing is the guest protocol's ([u32 stream][u32 length] payload):
stream 0 control JSON, 1 stdin/stdout, 2 stderr (see api/streams.py).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import termios
import threading
import tty
from contextlib import contextmanager

from ..guest.agent.protocol import Decoder, encode_frame

CONTROL, STDOUT, STDERR = 0, 1, 2


def _resize_frame() -> bytes:
    size = shutil.get_terminal_size()
    return encode_frame(CONTROL, json.dumps({"resize": [size.lines, size.columns]}).encode())


@contextmanager
def raw_terminal(enabled: bool):
    if not (enabled and sys.stdin.isatty()):
        yield
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _pump_stdin(conn) -> None:
    """Forward the user's stdin; its end closes the process's stdin."""
    fd = sys.stdin.fileno()
    try:
        while data := os.read(fd, 65536):
            conn.sendall(encode_frame(STDOUT, data))
        conn.sendall(encode_frame(STDOUT, b""))
    except OSError:
        pass


def run_stream(conn, stdin: bool = True, tty_mode: bool = False) -> int:
    """Pump until the daemon reports the exit; returns the process's exit code."""
    if tty_mode and sys.stdout.isatty():
        conn.sendall(_resize_frame())
        signal.signal(signal.SIGWINCH, lambda *_: conn.sendall(_resize_frame()))
    decoder = Decoder()
    out, err = sys.stdout.buffer, sys.stderr.buffer
    with raw_terminal(tty_mode):
        while data := conn.recv(65536):
            for stream, payload in decoder.feed(data):
                if stream == CONTROL:
                    message = json.loads(payload)
                    if message.get("started") and stdin:
                        stdin = False  # one pump, even if the process restarts
                        threading.Thread(target=_pump_stdin, args=(conn,), daemon=True).start()
                    if "exit" in message:
                        if message.get("error"):
                            err.write(f"{message['error']}\n".encode())
                            err.flush()
                        code = message["exit"]
                        return 255 if code is None else int(code)
                    continue
                target = err if stream == STDERR else out
                target.write(payload)
                target.flush()
    print("hyperctl: the stream ended without an exit status", file=sys.stderr)
    return 255

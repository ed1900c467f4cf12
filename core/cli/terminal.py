"""hyperctl's end of an attach, exec or run stream: the user's terminal and the framed socket.

The framing is the guest protocol's ([u32 stream][u32 length] payload):
stream 0 control JSON, 1 stdin/stdout, 2 stderr (see api/streams.py).

With a terminal (`-t`) the user's terminal is put in raw mode, so every key,
Ctrl-C included, goes to the process's own terminal in the guest; the window
size follows SIGWINCH; Ctrl-P Ctrl-Q detaches (where the caller allows it).
The terminal's mode is restored however the session ends: exit, detach, an
error, SIGTERM or SIGHUP.

Signals sent to hyperctl itself (Ctrl-C on a session without a terminal,
`kill`) follow the caller's `interrupt` policy: FORWARD passes the first one
on to the remote process and ends the session at the second; END ends it at
once. Either way the session then raises `Interrupted`, and what happens to
the remote process is the caller's and hyperd's business (an exec is killed
when its client goes, a `run` stops its container).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import termios
import threading
import tty
from collections.abc import Iterator

from ..guest.agent.protocol import Decoder, encode_frame
from .client import CommandError

CONTROL, STDOUT, STDERR = 0, 1, 2
DETACH_KEYS = b"\x10\x11"  # Ctrl-P Ctrl-Q, as Docker users know it
FORWARD, END = "forward", "end"
INTERRUPTS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(Exception):
    """hyperctl was told to stop (a signal) before the remote process ended."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class Detached(Exception):
    """The user typed the detach keys: the remote process goes on without us."""


def _control(message: dict) -> bytes:
    return encode_frame(CONTROL, json.dumps(message).encode())


@contextlib.contextmanager
def raw_terminal(enabled: bool) -> Iterator[None]:
    """The user's terminal in raw mode for the block, restored on every way out."""
    if not (enabled and sys.stdin.isatty()):
        yield
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        # A signal arriving now must not cut the restore short: held until it is done.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPTS)
        try:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


class Session:
    """One stream: output to the user's stdout/stderr, the user's input to the process."""

    def __init__(
        self,
        conn,
        tty_mode: bool,
        stdin: bool,
        detach_keys: bytes | None,
        interrupt: str,
        on_start=None,
    ) -> None:
        self.conn = conn
        self.tty_mode = tty_mode
        self.want_stdin = stdin
        self.detach_keys = detach_keys if tty_mode else None
        self.interrupt = interrupt
        self.detached = threading.Event()
        self.started = False  # the remote process ran (hyperd said so)
        self.on_start = on_start  # called once it does, before its first output
        self._interrupts = 0
        self._send_lock = threading.Lock()

    def send(self, data: bytes) -> None:
        with self._send_lock:
            self.conn.sendall(data)

    # -- signals ---------------------------------------------------------------------

    def _on_signal(self, signum: int, frame) -> None:
        self._interrupts += 1
        # In raw mode Ctrl-C is a key for the remote terminal; a SIGINT that still
        # reaches us came from `kill` and is passed on like the others.
        if self.interrupt == FORWARD and self._interrupts == 1:
            with contextlib.suppress(OSError):
                self.send(_control({"signal": signum}))
            return
        raise Interrupted(signum)

    def _on_resize(self, signum: int, frame) -> None:
        with contextlib.suppress(OSError):
            self.send(self._size())

    @staticmethod
    def _size() -> bytes:
        size = shutil.get_terminal_size()
        return _control({"resize": [size.lines, size.columns]})

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        wanted = {s: self._on_signal for s in INTERRUPTS}
        if self.tty_mode and sys.stdout.isatty():
            wanted[signal.SIGWINCH] = self._on_resize
        previous = {s: signal.signal(s, handler) for s, handler in wanted.items()}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    # -- input -----------------------------------------------------------------------

    def _pump_stdin(self) -> None:
        """Forward the user's input; its end closes the process's stdin."""
        fd = sys.stdin.fileno()
        held = b""  # the start of the detach keys, held back until we know
        try:
            while data := os.read(fd, 65536):
                if self.detach_keys:
                    data, held, detach = _scan(held + data, self.detach_keys)
                    if data:
                        self.send(encode_frame(STDOUT, data))
                    if detach:
                        self.detached.set()
                        self.send(_control({"detach": True}))
                        self.conn.shutdown()  # wakes the reader
                        return
                    continue
                self.send(encode_frame(STDOUT, data))
            self.send(encode_frame(STDOUT, held))
            self.send(encode_frame(STDOUT, b""))
        except OSError:
            pass

    # -- the session -----------------------------------------------------------------

    def run(self) -> int:
        """Pump until the process exits; its exit code (Interrupted, Detached otherwise)."""
        with self._signals(), raw_terminal(self.tty_mode):
            if self.tty_mode and sys.stdout.isatty():
                self.send(self._size())
            return self._receive()

    def _receive(self) -> int:
        decoder = Decoder()
        out, err = sys.stdout.buffer, sys.stderr.buffer
        stdin = self.want_stdin
        while True:
            try:
                data = self.conn.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            for stream, payload in decoder.feed(data):
                if stream != CONTROL:
                    target = err if stream == STDERR else out
                    target.write(payload)
                    target.flush()
                    continue
                message = json.loads(payload)
                if message.get("started") and not self.started:
                    self.started = True
                    if self.on_start:
                        self.on_start()
                if message.get("started") and stdin and _may_read_stdin():
                    stdin = False  # one pump, even if the process restarts
                    threading.Thread(target=self._pump_stdin, daemon=True).start()
                if "exit" in message:
                    return self._exit(message)
        if self.detached.is_set():
            raise Detached()
        raise CommandError("hyperd ended the stream without the process's exit status")

    def _exit(self, message: dict) -> int:
        code, error = message["exit"], message.get("error")
        if code is None:
            raise CommandError(
                error or "the process ended without an exit status (its pod stopped)"
            )
        if error:
            sys.stderr.write(f"{error}\n")
            sys.stderr.flush()
        return int(code)


def _may_read_stdin() -> bool:
    """Not from a terminal we run in the background of (`hyperctl run ... &`): reading
    it would stop us (SIGTTIN) and steal the shell's input."""
    try:
        return not os.isatty(0) or os.tcgetpgrp(0) == os.getpgrp()
    except OSError:
        return False


def _scan(data: bytes, keys: bytes) -> tuple[bytes, bytes, bool]:
    """Split input at the detach keys: (bytes to send, bytes held back, detach seen)."""
    found = data.find(keys)
    if found >= 0:
        return data[:found], b"", True
    for length in range(min(len(keys) - 1, len(data)), 0, -1):
        if data.endswith(keys[:length]):  # maybe the start of the keys: wait for more
            return data[:-length], data[-length:], False
    return data, b"", False

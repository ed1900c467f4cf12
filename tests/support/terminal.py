"""A command running in a real pseudo-terminal, as a user's shell would run it.

    with Terminal([*HYPERCTL, "run", "-t", "--rm", "busybox", "sh"], env) as term:
        term.expect(b"# ")
        term.send(b"stty size\\r")
        term.expect(b"24 80")
        term.resize(40, 120)          # the kernel sends SIGWINCH, as a terminal window does
        ...
        assert term.wait() == 0

The command is a session leader whose controlling terminal is the pty, so job
control signals, SIGWINCH and raw mode behave as in an xterm. Everything the
command writes is kept in `output` (bytes); `expect` waits for a pattern to
appear after the last match.
"""

from __future__ import annotations

import fcntl
import os
import re
import signal
import struct
import subprocess
import termios
import threading


def _take_terminal() -> None:  # in the child, after setsid: the pty becomes its terminal
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        rows: int = 24,
        cols: int = 80,
        cwd: str | None = None,
    ) -> None:
        self.master, slave = os.openpty()
        self._set_size(slave, rows, cols)
        self.initial_mode = termios.tcgetattr(slave)
        try:
            self.process = subprocess.Popen(
                argv,
                env={**env, "TERM": "xterm"},
                stdin=slave,
                stdout=slave,
                stderr=slave,
                start_new_session=True,
                preexec_fn=_take_terminal,
                cwd=cwd,
            )
        finally:
            os.close(slave)
        self.output = bytearray()
        self._seen = 0  # where the next expect() starts looking
        self._changed = threading.Condition()
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- input and output --------------------------------------------------------

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: every process holding the pty's other side is gone
                data = b""
            with self._changed:
                if not data:
                    self._closed = True
                    self._changed.notify_all()
                    return
                self.output.extend(data)
                self._changed.notify_all()

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def expect(self, pattern: bytes, timeout: float = 60.0) -> re.Match:
        """Wait until `pattern` (a regex) appears in what was written since the last match."""
        regex = re.compile(pattern)
        with self._changed:
            found = self._changed.wait_for(
                lambda: regex.search(self.output, self._seen) or self._closed, timeout
            )
            match = regex.search(self.output, self._seen)
            if not match:
                why = "the terminal closed" if found else f"not seen within {timeout:.0f} s"
                raise AssertionError(
                    f"{pattern!r} {why}; the terminal shows:\n{bytes(self.output[self._seen :])!r}"
                )
            self._seen = match.end()
            return match

    def text(self) -> str:
        with self._changed:
            return self.output.decode(errors="replace")

    # -- the terminal itself ------------------------------------------------------

    @staticmethod
    def _set_size(fd: int, rows: int, cols: int) -> None:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def resize(self, rows: int, cols: int) -> None:
        """Change the window size; the kernel signals the foreground process group."""
        self._set_size(self.master, rows, cols)

    def mode(self) -> list:
        """The terminal's current termios settings (the master sees the slave's)."""
        return termios.tcgetattr(self.master)

    def is_raw(self) -> bool:
        return not self.mode()[3] & termios.ICANON

    # -- the process --------------------------------------------------------------------

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 60.0) -> int:
        code = self.process.wait(timeout)
        with self._changed:  # what it wrote last is read before the caller looks
            self._changed.wait_for(lambda: self._closed, 5)
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        try:
            os.close(self.master)
        except OSError:
            pass

"""The shim's log stream: containerd reads it through a fifo, and may be gone."""

from __future__ import annotations

import os
import signal

from hypercontainer.shim.serve import FifoLog


def test_a_log_line_with_no_reader_is_dropped_not_raised() -> None:
    previous = signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as the shim has it
    reader, writer = os.pipe()
    try:
        stream = open(writer, "w")  # noqa: SIM115 - closed below
        log = FifoLog(stream)
        assert log.write("kept\n") == 5
        assert os.read(reader, 100) == b"kept\n"
        os.close(reader)  # containerd went away
        assert log.write("dropped\n") == 8
        log.flush()
        assert not log.isatty()
    finally:
        signal.signal(signal.SIGPIPE, previous)
        try:
            stream.close()
        except OSError:  # its buffer could not be written
            pass

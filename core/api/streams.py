"""Attach and exec streams between hyperd and hyperctl, after the HTTP upgrade.

Both directions use the guest protocol's framing ([u32 stream][u32 length]):
stream 0 carries JSON control messages ({"started": true} then {"exit": code}
to the client; {"resize": [rows, cols]}, {"signal": number} and
{"detach": true} from it), stream 1 is stdin (client to daemon; an empty
frame closes it) and stdout (daemon to client), stream 2 stderr. The client
sends stdin only after "started": before, the process it would go to does not
exist yet (e.g. `run` attaches before the VM boots).

How a stream ended is told to its owner: EXITED (the process did), DETACHED
(the client said so, then left) or GONE (the client went away without a word:
killed, interrupted twice, its connection cut).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable

from ..errors import HyperError
from ..guest.agent.protocol import Decoder, ProtocolError, encode_frame
from ..log import get_logger
from ..subscribers import Listener

CONTROL, STDOUT, STDERR = 0, 1, 2
STDIN = 1
FD_STREAMS = {"stdout": STDOUT, "stderr": STDERR}
EXITED, DETACHED, GONE = "exited", "detached", "gone"
READER_GRACE = 5.0  # seconds the client's last frames may take to be read after it left

log = get_logger()


def control(message: dict) -> bytes:
    return encode_frame(CONTROL, json.dumps(message).encode())


class Stdin:
    """Where a stream's client input goes (the runtime's write/close/resize/signal
    for one process)."""

    def __init__(
        self,
        write: Callable[[bytes], None],
        close: Callable[[], None],
        resize: Callable[[int, int], None],
        signal: Callable[[int], None],
    ) -> None:
        self.write, self.close, self.resize, self.signal = write, close, resize, signal


def serve(
    connection: socket.socket,
    rfile,
    listener: Listener,
    stdin: Stdin | None,
    on_end: Callable[[str], None],
) -> None:
    """Pump the listener's output to the client and the client's input to stdin."""
    outcome = GONE
    reader: threading.Thread | None = None
    try:
        while True:
            item = listener.take()
            if item[0] == "gone":
                log.debug("stream client went away")
                return
            if item[0] == "started":
                if stdin is not None:
                    reader = threading.Thread(
                        target=_read_client, args=(rfile, stdin, listener), daemon=True
                    )
                    reader.start()
                    stdin = None  # a restarted container does not get a second reader
                connection.sendall(control({"started": True}))
                continue
            if item[0] == "out":
                _, fd, data = item
                connection.sendall(encode_frame(FD_STREAMS.get(fd, STDOUT), data))
                continue
            _, code, error = item
            message = {"exit": code}
            if error:
                message["error"] = error
            outcome = EXITED
            connection.sendall(control(message))
            return
    except OSError:
        log.debug("stream client went away")
    finally:
        if outcome == GONE and reader is not None:
            # A client that detaches closes at once: its last frames may still be read
            # when writing to it fails. What they said decides.
            reader.join(READER_GRACE)
            if listener.detached:
                outcome = DETACHED
        on_end(outcome)
        try:
            connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _read_client(rfile, stdin: Stdin, listener: Listener) -> None:
    """Pass the client's input on until it hangs up, then end the stream: a client
    never half-closes (it ends stdin with an empty frame), so end of input is its
    going away, and its stream must not wait for output that may never come."""
    decoder = Decoder()
    try:
        while data := rfile.read1(65536):
            for stream, payload in decoder.feed(data):
                if stream == STDIN and payload:
                    _apply(stdin.write, payload)
                elif stream == STDIN:
                    _apply(stdin.close)
                elif stream == CONTROL:
                    message = json.loads(payload)
                    if not isinstance(message, dict):
                        raise ValueError("a control frame is a JSON object")
                    if message.get("detach"):
                        listener.detached = True
                    if size := message.get("resize"):
                        _apply(stdin.resize, int(size[0]), int(size[1]))
                    if signum := message.get("signal"):
                        _apply(stdin.signal, int(signum))
    except (OSError, ProtocolError, ValueError, TypeError, IndexError) as e:
        log.debug("stream input ended", error=str(e))
    listener.client_gone()


def _apply(action: Callable, *args) -> None:
    """One client request; its failure (the process just ended, a bad signal) is not
    the stream's end."""
    try:
        action(*args)
    except HyperError as e:
        log.debug("stream input refused", error=str(e))

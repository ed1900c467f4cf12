"""Everything the agent sends, queued, so that no producer waits for the host.

One writer thread drains the queue into the current session's connection. While
no host is connected the queue keeps filling: control messages always fit,
process output is bounded by `limit` bytes and its producers then block (a
container writing to a full pipe waits, as with any slow reader), so nothing is
dropped. Replies belong to the session that asked; a reply queued for a session
that has ended is dropped.

The outbox also keeps the table of open streams: an output stream stays in it
until its end-of-file frame has been written, a stdin stream until its process
exits, so the handshake of a new session can tell the host which process every
stream belongs to.
"""

from __future__ import annotations

import collections
import threading

from . import protocol


class Session:
    """One host connection: a way to write bytes, and whether it still stands."""

    def __init__(self, number: int, write) -> None:
        self.number = number
        self.write = write  # write(bytes) -> None, raises OSError when the host is gone
        self.ended = False


class _Item:
    __slots__ = ("frame", "session", "stream", "eof", "size")

    def __init__(self, frame: bytes, session: int | None = None, stream: int = 0,
                 eof: bool = False) -> None:
        self.frame = frame
        self.session = session  # a reply: only for this session
        self.stream = stream
        self.eof = eof
        self.size = len(frame) if stream else 0  # only output counts against the limit


class Outbox:
    def __init__(self, limit: int = 8 << 20) -> None:
        self._limit = limit
        self._queued = 0
        self._items: collections.deque[_Item] = collections.deque()
        self._cond = threading.Condition()
        self._session: Session | None = None
        self._sessions = 0
        self._streams: dict[int, dict] = {}  # stream -> {"stream", "key", "fd"}
        self._next_stream = 1
        self._closing = False
        self._writing = False

    # -- producers ----------------------------------------------------------

    def event(self, message: dict) -> None:
        self._put(_Item(protocol.encode_message(message)))

    def reply(self, session: Session, message: dict) -> None:
        self._put(_Item(protocol.encode_message(message), session=session.number))

    def open_stream(self, key: str, fd: str) -> int:
        """A new stream number for (key, fd), announced to the host in order."""
        with self._cond:
            stream = self._next_stream
            self._next_stream += 1
            entry = {"stream": stream, "key": key, "fd": fd}
            self._streams[stream] = entry
        self.event({"event": "stream", **entry})
        return stream

    def forget_stream(self, stream: int) -> None:
        """A stdin stream is closed: leave it out of later handshakes."""
        with self._cond:
            self._streams.pop(stream, None)

    def data(self, stream: int, data: bytes) -> None:
        """Queue output; blocks while `limit` bytes of output are already waiting."""
        for start in range(0, len(data), protocol.DATA_CHUNK):
            chunk = data[start : start + protocol.DATA_CHUNK]
            self._put(_Item(protocol.encode_frame(stream, chunk), stream=stream), wait=True)

    def end_stream(self, stream: int) -> None:
        self._put(_Item(protocol.encode_frame(stream, b""), stream=stream, eof=True))

    def _put(self, item: _Item, wait: bool = False) -> None:
        with self._cond:
            while wait and self._queued and self._queued + item.size > self._limit:
                self._cond.wait()
            self._items.append(item)
            self._queued += item.size
            self._cond.notify_all()

    # -- sessions -----------------------------------------------------------

    def begin(self, write, handshake: dict) -> Session:
        """Start sending to a new connection, first SYNC and the handshake reply.

        `handshake` is completed with the table of open output streams.
        """
        with self._cond:
            if self._session is not None:
                self._session.ended = True
            self._sessions += 1
            session = Session(self._sessions, write)
            handshake = dict(handshake)
            handshake.setdefault("result", {})["streams"] = list(self._streams.values())
            first = protocol.SYNC + protocol.encode_message(handshake)
            self._items.appendleft(_Item(first, session=session.number))
            self._session = session
            self._cond.notify_all()
            return session

    def end(self, session: Session) -> None:
        with self._cond:
            session.ended = True
            if self._session is session:
                self._session = None
            self._cond.notify_all()

    def close(self) -> None:
        """Let the writer finish what is queued for the current session, then stop."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the queue is empty (or no host is connected to drain it)."""
        with self._cond:
            return self._cond.wait_for(
                lambda: (not self._items and not self._writing) or self._session is None,
                timeout,
            )

    # -- the writer thread --------------------------------------------------

    def run_writer(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: (self._session is not None and self._items) or
                    (self._closing and (not self._items or self._session is None))
                )
                if self._session is None or not self._items:
                    return  # closing
                session = self._session
                item = self._items.popleft()
                if item.session is not None and item.session != session.number:
                    self._done(item)
                    continue
                self._writing = True
            try:
                session.write(item.frame)
                failed = False
            except OSError:
                failed = True
            with self._cond:
                self._writing = False
                if failed or session.ended:
                    # Not (certainly) delivered: keep it for the next session.
                    # An exit event may thus arrive twice, never zero times.
                    self._items.appendleft(item)
                    if self._session is session:
                        self._session = None
                    session.ended = True
                else:
                    self._done(item)
                self._cond.notify_all()

    def _done(self, item: _Item) -> None:
        self._queued -= item.size
        if item.eof:
            self._streams.pop(item.stream, None)
        self._cond.notify_all()

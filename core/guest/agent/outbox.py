"""Everything the agent sends, queued, so that no producer waits for the host, and
kept until the host acknowledges it, so that a host that goes away loses nothing.

One writer thread drains the queue into the current session's connection.
Events and output frames are numbered in the order they are queued; the host
acknowledges what it has received (`{"ack": n}`: everything up to number n),
and what is written but not yet acknowledged is sent again, in order, to the
next host after its handshake. (A host may thus see a frame twice, never miss
one: on a virtio-serial port the agent cannot even tell whether the bytes it
wrote reached the old host, or the start of a new one that skipped them.)

Output not yet acknowledged is bounded by `limit` bytes: beyond it producers
block (a container writing to a full pipe waits, as with any slow reader).
Control messages always fit. Replies belong to the session that asked; a reply
for a session that has ended is dropped, and replies are never sent again.

The outbox also keeps the table of open streams: an output stream stays in it
until its end-of-file frame is acknowledged, a stdin stream until its process
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
    __slots__ = ("frame", "session", "seq", "stream", "eof", "size")

    def __init__(
        self, frame: bytes, session: int | None = None, stream: int = 0, eof: bool = False
    ) -> None:
        self.frame = frame
        self.session = session  # a reply (or handshake): only for this session
        self.seq = 0  # numbered when queued, unless session-bound
        self.stream = stream
        self.eof = eof
        self.size = len(frame) if stream else 0  # only output counts against the limit


class Outbox:
    def __init__(self, limit: int = 8 << 20) -> None:
        self._limit = limit
        self._held = 0  # bytes of output queued or unacknowledged
        self._items: collections.deque[_Item] = collections.deque()
        self._unacked: collections.deque[_Item] = collections.deque()
        self._next_seq = 1
        self._acknowledged = 0  # the host has every numbered frame up to this one
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
        """Queue output; blocks while `limit` bytes of output are held already."""
        for start in range(0, len(data), protocol.DATA_CHUNK):
            chunk = data[start : start + protocol.DATA_CHUNK]
            self._put(_Item(protocol.encode_frame(stream, chunk), stream=stream), wait=True)

    def end_stream(self, stream: int) -> None:
        self._put(_Item(protocol.encode_frame(stream, b""), stream=stream, eof=True))

    def _put(self, item: _Item, wait: bool = False) -> None:
        with self._cond:
            while wait and self._held and self._held + item.size > self._limit:
                self._cond.wait()
            if item.session is None:
                item.seq = self._next_seq
                self._next_seq += 1
            self._items.append(item)
            self._held += item.size
            self._cond.notify_all()

    # -- the host's side ----------------------------------------------------

    def acknowledge(self, seq: int) -> None:
        """The host has everything numbered up to `seq`."""
        with self._cond:
            self._acknowledged = max(self._acknowledged, seq)
            while self._unacked and self._unacked[0].seq <= seq:
                self._release(self._unacked.popleft())
            self._cond.notify_all()

    def begin(self, write, handshake: dict) -> Session:
        """Start sending to a new connection: SYNC and the handshake reply, then
        what the previous host did not acknowledge, then the queue.

        The handshake's result gets the table of open streams and `seq`, the
        number of the first numbered frame to follow.
        """
        with self._cond:
            if self._session is not None:
                self._session.ended = True
            self._sessions += 1
            session = Session(self._sessions, write)
            self._items.extendleft(reversed(self._unacked))
            self._unacked.clear()
            first = next((item.seq for item in self._items if item.session is None), self._next_seq)
            handshake = dict(handshake)
            result = dict(handshake.get("result") or {})
            result.update(streams=list(self._streams.values()), seq=first)
            handshake["result"] = result
            frame = protocol.SYNC + protocol.encode_message(handshake)
            self._items.appendleft(_Item(frame, session=session.number))
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
        """Wait until the queue is written out (or no host is connected to take it)."""
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
                    lambda: (
                        (self._session is not None and self._items)
                        or (self._closing and (not self._items or self._session is None))
                    )
                )
                if self._session is None or not self._items:
                    return  # closing
                session = self._session
                item = self._items.popleft()
                if item.session is not None and item.session != session.number:
                    continue  # a reply to a host that has gone
                self._writing = True
            try:
                session.write(item.frame)
                failed = False
            except OSError:
                failed = True
            with self._cond:
                self._writing = False
                if failed:
                    if item.session is None:
                        self._items.appendleft(item)  # for the next host
                    if self._session is session:
                        self._session = None
                    session.ended = True
                elif item.session is None:
                    # The host may have read and acknowledged it while we wrote it.
                    if item.seq <= self._acknowledged:
                        self._release(item)
                    else:
                        self._unacked.append(item)
                self._cond.notify_all()

    def _release(self, item: _Item) -> None:
        self._held -= item.size
        if item.eof:
            self._streams.pop(item.stream, None)

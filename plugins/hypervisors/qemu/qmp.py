"""QMP through the `qemu.qmp` library, from synchronous code.

`qemu.qmp` is asyncio; the driver is called from plain threads (and possibly
from under someone else's running loop), so every exchange runs on one
private event loop in a daemon thread. Each call opens its own short QMP
session: QEMU serves one monitor client at a time, and a session held open
by one driver instance would block every other (a restarted daemon, a test).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from hypercontainer.errors import DriverError
from qemu.qmp import EventListener, ExecuteError, QMPClient, QMPError, Runstate

T = TypeVar("T")
# What a QMP exchange can fail with. qemu.qmp also trips its own assertions when QEMU
# closes the socket in the middle of its connect or disconnect (seen as a pod's VM
# exited during rm): that is a monitor that went away, not a bug of ours.
LOST = (QMPError, OSError, EOFError, AssertionError)

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _run(coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="qmp", daemon=True).start()
    future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(coroutine, timeout), _loop)
    return future.result()


async def _session(socket: Path, commands: list[tuple[str, dict[str, Any] | None]]) -> list[Any]:
    client = QMPClient("hypercontainer")
    try:
        await client.connect(str(socket))  # also negotiates capabilities
        return [await client.execute(name, arguments) for name, arguments in commands]
    finally:
        try:
            await client.disconnect()
        except LOST:
            pass  # e.g. after "quit" QEMU closes the socket first; the replies are in


def execute(
    socket: Path, command: str, arguments: dict[str, Any] | None = None, timeout: float = 10.0
) -> Any:
    """Run one QMP command; DriverError if QEMU refuses it or cannot be reached."""
    try:
        return _run(_session(socket, [(command, arguments)]), timeout)[0]
    except ExecuteError as e:
        raise DriverError(f"qemu refused {command}: {getattr(e.error, 'desc', e)}") from None
    except (*LOST, TimeoutError) as e:
        raise DriverError(
            f"qemu monitor {socket}: {command} failed: {e or type(e).__name__}"
        ) from None


def converse(
    socket: Path, what: str, work: Callable[[QMPClient], Awaitable[T]], timeout: float
) -> T:
    """Run `work` with one connected client, for an exchange that waits on QEMU's
    events (a migration); DriverError naming `what` if it fails or takes too long."""

    async def talk() -> T:
        client = QMPClient("hypercontainer")
        try:
            await client.connect(str(socket))
            return await work(client)
        finally:
            try:
                await client.disconnect()
            except LOST:
                pass

    try:
        return _run(talk(), timeout)
    except ExecuteError as e:
        raise DriverError(f"{what}: qemu refused {e.sent.get('execute')}: {e}") from None
    except TimeoutError:
        raise DriverError(f"{what}: no answer from qemu within {timeout:g} s") from None
    except LOST as e:
        raise DriverError(f"{what}: qemu monitor {socket}: {e or type(e).__name__}") from None


async def next_event(client: QMPClient, events: EventListener) -> Any:
    """The next event `events` listens for; EOFError if QEMU closes its monitor first
    (it exited, or was killed): an event waited for then never comes."""
    event = asyncio.ensure_future(events.get())
    lost = asyncio.ensure_future(_disconnected(client))
    try:
        await asyncio.wait({event, lost}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in (event, lost):
            waiter.cancel()
    if event.done() and not event.cancelled():
        return event.result()
    raise EOFError("qemu closed its monitor (it exited)")


async def _disconnected(client: QMPClient) -> None:
    while client.runstate == Runstate.RUNNING:
        await client.runstate_changed()


def human(socket: Path, command_line: str, timeout: float = 10.0) -> str:
    """Run a human-monitor (HMP) command; its output, which is where HMP puts errors."""
    output = execute(socket, "human-monitor-command", {"command-line": command_line}, timeout)
    return str(output).strip()

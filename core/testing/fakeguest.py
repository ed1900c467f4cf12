"""An in-process guest agent: the real agent's server, outbox and request checks, with
container processes that are simulated instead of run by crun.

Everything the host sees is what a real guest sends: the handshake, replies,
stream announcements, output frames, exit events, the resending of what the
host did not acknowledge. Only what would run in the VM is pretend: no root
filesystem is mounted and a "process" is a few lines of Python chosen by its
command (see `Program`). A test scripts faults with `fail_next` and `silence`.
"""

from __future__ import annotations

import itertools
import os
import queue
import shlex
import signal as signals
import socket
import threading

from ..guest.agent import pod
from ..guest.agent.args import Args
from ..guest.agent.errors import Failure
from ..guest.agent.handlers import Handlers
from ..guest.agent.outbox import Outbox
from ..guest.agent.process import CREATED, EXITED, RUNNING
from ..guest.agent.protocol import process_key
from ..guest.agent.server import Server
from ..guest.agent.transport import SocketConnection

HARMLESS_SIGNALS = {signals.SIGCHLD, signals.SIGWINCH, signals.SIGCONT, signals.SIGURG}


class FakeProcess:
    """One simulated process; its output goes to the host through the outbox."""

    _pids = itertools.count(100)

    def __init__(
        self, guest: FakeGuest, container: str, exec_id: str | None, argv: list[str], stdin: bool
    ) -> None:
        self.guest = guest
        self.key = process_key(container, exec_id)
        self.container = container
        self.exec_id = exec_id
        self.argv = argv
        self.status = RUNNING
        self.code: int | None = None
        self.pid = next(self._pids)
        self.size: tuple[int, int] | None = None  # the terminal's, as last resized
        outbox = guest.outbox
        self._out = outbox.open_stream(self.key, "stdout")
        self._err = outbox.open_stream(self.key, "stderr")
        self.stdin_stream = outbox.open_stream(self.key, "stdin") if stdin else None
        self.program = Program.of(argv)
        self._lock = threading.Lock()

    def write(self, fd: str, data: bytes) -> None:
        self.guest.outbox.data(self._out if fd == "stdout" else self._err, data)

    def stdin(self, data: bytes) -> None:
        self.program.stdin(self, data)

    def signal(self, signum: int) -> None:
        self.program.signal(self, signum)

    def exit(self, code: int) -> None:
        with self._lock:
            if self.status == EXITED:
                return
            self.status, self.code = EXITED, code
        outbox = self.guest.outbox
        outbox.end_stream(self._out)
        outbox.end_stream(self._err)
        if self.stdin_stream is not None:
            outbox.forget_stream(self.stdin_stream)
        self.guest.exited(self)
        outbox.event(
            {
                "event": "exit",
                "key": self.key,
                "container": self.container,
                "exec": self.exec_id,
                "code": code,
            }
        )

    def describe(self) -> dict:
        return {"status": self.status, "code": self.code, "pid": self.pid}


class Program:
    """How a simulated command behaves, chosen by its name (`sh -c SCRIPT` is read too):

    - `true`, `false`, `exit N`: exit 0, 1, N at once; `echo WORDS`: print them, exit 0
    - `cat`: copy stdin to stdout, exit 0 at its end
    - `stubborn`: ignore SIGTERM (only SIGKILL ends it)
    - anything else (`sleep`, `top`, a shell...): run until a signal ends it (128 + signal)
    """

    def __init__(self, words: list[str]) -> None:
        self.words = words

    @classmethod
    def of(cls, argv: list[str]) -> Program:
        words = list(argv)
        if (
            len(words) >= 3
            and os.path.basename(words[0]) in ("sh", "ash", "bash")
            and words[1] == "-c"
        ):
            try:
                words = shlex.split(words[2]) or ["true"]
            except ValueError:
                words = ["sh"]
        return cls(words)

    @property
    def name(self) -> str:
        return os.path.basename(self.words[0])

    def started(self, process: FakeProcess) -> None:
        if self.name == "true":
            process.exit(0)
        elif self.name == "false":
            process.exit(1)
        elif self.name == "exit":
            process.exit(
                int(self.words[1]) if len(self.words) > 1 and self.words[1].isdigit() else 0
            )
        elif self.name == "echo":
            process.write("stdout", (" ".join(self.words[1:]) + "\n").encode())
            process.exit(0)

    def stdin(self, process: FakeProcess, data: bytes) -> None:
        if self.name != "cat":
            return
        if data:
            process.write("stdout", data)
        else:
            process.exit(0)

    def signal(self, process: FakeProcess, signum: int) -> None:
        if signum in HARMLESS_SIGNALS or (self.name == "stubborn" and signum == signals.SIGTERM):
            return
        process.exit(128 + signum)


class FakeContainer:
    def __init__(self, spec: dict) -> None:
        self.id = spec["id"]
        self.spec = spec
        self.process: FakeProcess | None = None
        self.execs: dict[str, FakeProcess] = {}
        self.files: dict[str, bytes] = {}

    @property
    def status(self) -> str:
        return self.process.status if self.process else CREATED

    def describe(self) -> dict:
        main = (
            self.process.describe()
            if self.process
            else {"status": CREATED, "code": None, "pid": None}
        )
        main["execs"] = {eid: p.describe() for eid, p in self.execs.items()}
        return main


class _Stdio:
    """What the handlers reach through runtime.stdio(key): resize and close stdin."""

    def __init__(self, process: FakeProcess) -> None:
        self.process = process

    def resize(self, rows: int, cols: int) -> None:
        self.process.size = (rows, cols)

    def write(self, data: bytes) -> None:
        self.process.stdin(data)


class _Network:
    def __init__(self) -> None:
        self.hostname = "localhost"
        self.address: str | None = None
        self.resolv_conf = ""
        self.interface: dict | None = None


class _FakeHandlers(Handlers):
    """The agent's own request checks; start_pod records instead of changing a machine."""

    def __init__(self, guest: FakeGuest) -> None:
        super().__init__(guest)  # type: ignore[arg-type]  # the fake plays the agent runtime
        self.guest = guest

    def dispatch(self, op: str, message: dict):
        self.guest.requests.append(op)
        fault = self.guest.fault(op)
        if fault == "silence":
            self.guest.gone.wait()  # never answers while the VM lives, as a hung guest
        if fault is not None:
            raise Failure(fault)
        return super().dispatch(op, message)

    def op_start_pod(self, args: Args) -> dict:
        network = self.guest.network
        hostname = pod.check_hostname(args.str("hostname"))
        network.resolv_conf = pod.resolv_conf(
            args.strings("dns"), args.strings("dns_search"), args.strings("dns_options")
        )
        interface = args.sub("interface")
        network.interface = None if interface is None else dict(args.dict("interface"))
        network.hostname = hostname
        network.address = (network.interface or {}).get("address")
        return {"hostname": hostname, "address": network.address}


class FakeGuest:
    """The guest agent of one fake VM. Connections come one at a time, as on a serial port."""

    def __init__(self) -> None:
        self.outbox = Outbox()
        self.network = _Network()
        self.containers: dict[str, FakeContainer] = {}
        self.requests: list[str] = []  # every op asked, in order
        self.powered_off = threading.Event()  # destroy_pod was answered
        self.gone = threading.Event()  # the VM is off: nothing answers any more
        self._faults: dict[str, list[str]] = {}
        self._lock = threading.RLock()
        self._running: dict[str, FakeProcess] = {}  # by process key
        self._connections: queue.Queue[SocketConnection | None] = queue.Queue()
        self._current: SocketConnection | None = None
        self.server = Server(_FakeHandlers(self), self.outbox)
        threading.Thread(
            target=self.server.serve, args=(self._incoming(),), daemon=True, name="fake-guest"
        ).start()
        threading.Thread(
            target=self._power_off_when_destroyed, daemon=True, name="fake-guest-power"
        ).start()

    # -- the host's side ------------------------------------------------------

    def connect(self) -> socket.socket:
        """A new host connection (the host's end of it)."""
        if self.powered_off.is_set():
            raise OSError("the guest has powered off")
        ours, theirs = socket.socketpair()
        self._connections.put(SocketConnection(ours))
        return theirs

    def hang_up(self) -> None:
        """Drop the current connection (the VM is gone): the host sees its end."""
        self._connections.put(None)
        current = self._current
        if current is not None:
            current.close()
        # Only now: a request held by `silence` then wakes, and its answer can no
        # longer reach the host (a gone guest answers nothing).
        self.gone.set()
        self.outbox.close()

    def _incoming(self):
        while (connection := self._connections.get()) is not None:
            self._current = connection
            yield connection

    def _power_off_when_destroyed(self) -> None:
        self.server.finished.wait()
        self.outbox.flush(5)
        self.powered_off.set()

    # -- fault injection --------------------------------------------------------

    def write_raw(self, data: bytes) -> None:
        """Bytes on the current connection as they are, after what the outbox queued:
        what a compromised guest may write, framed or not, flow control or not."""
        self.outbox.flush(5)
        current = self._current
        if current is None:
            raise OSError("no host is connected")
        current.write(data)

    def fail_next(self, op: str, error: str = "injected failure") -> None:
        """The next request `op` fails with `error`, as a real guest reports one."""
        self._faults.setdefault(op, []).append(error)

    def silence(self, op: str) -> None:
        """The next request `op` is never answered (a hung guest)."""
        self._faults.setdefault(op, []).append("silence")

    def fault(self, op: str) -> str | None:
        with self._lock:
            pending = self._faults.get(op)
            return pending.pop(0) if pending else None

    # -- what the handlers call (the agent runtime's interface) ------------------

    def get(self, container_id: str) -> FakeContainer:
        container = self.containers.get(container_id)
        if container is None:
            raise Failure(f"no container {container_id}")
        return container

    def create(self, spec: dict) -> None:
        with self._lock:
            if spec["id"] in self.containers:
                raise Failure(f"container {spec['id']} already exists")
            self.containers[spec["id"]] = FakeContainer(spec)

    def start(self, container_id: str) -> None:
        container = self.get(container_id)
        if container.process is not None:
            raise Failure(f"container {container_id} was already started")
        proc = container.spec["process"]
        container.process = self._launch(container_id, None, proc["args"], proc["stdin"])

    def exec(
        self,
        container_id: str,
        exec_id: str,
        args: list[str],
        env: list[str],
        cwd: str | None,
        user: str | None,
        terminal: bool,
        stdin: bool,
    ) -> None:
        container = self.get(container_id)
        if container.status != RUNNING:
            raise Failure(f"container {container_id} is not running")
        if exec_id in container.execs:
            raise Failure(f"exec {exec_id} already exists in container {container_id}")
        container.execs[exec_id] = self._launch(container_id, exec_id, args, stdin)

    def _launch(
        self, container_id: str, exec_id: str | None, argv: list[str], stdin: bool
    ) -> FakeProcess:
        process = FakeProcess(self, container_id, exec_id, argv, stdin)
        with self._lock:
            self._running[process.key] = process
        # The reply to the request that started it goes first, as with a real process.
        threading.Thread(target=process.program.started, args=(process,), daemon=True).start()
        return process

    def exited(self, process: FakeProcess) -> None:
        with self._lock:
            self._running.pop(process.key, None)

    def write_stdin(self, stream: int, data: bytes) -> None:
        with self._lock:
            readers = [p for p in self._running.values() if p.stdin_stream == stream]
        for process in readers:
            process.stdin(data)

    def stdio(self, key: str) -> _Stdio:
        process = self._running.get(key)
        if process is None:
            raise Failure(f"no running process {key}")
        return _Stdio(process)

    def signal(self, container_id: str, signum: int, exec_id: str | None) -> None:
        container = self.get(container_id)
        process = container.process if exec_id is None else container.execs.get(exec_id)
        if process is None or process.status != RUNNING:
            what = (
                f"container {container_id}"
                if exec_id is None
                else f"exec {exec_id} of container {container_id}"
            )
            raise Failure(f"{what} is not running")
        process.signal(signum)

    def write_file(
        self, container_id: str, path: str, data: bytes, mode: int, append: bool
    ) -> None:
        files = self.get(container_id).files
        files[path] = (files.get(path, b"") if append else b"") + data

    def read_file(self, container_id: str, path: str, offset: int, length: int) -> dict:
        import base64

        files = self.get(container_id).files
        if path not in files:
            raise Failure(f"{path}: No such file or directory")
        data = files[path][offset : offset + length]
        return {
            "data_b64": base64.b64encode(data).decode(),
            "eof": offset + len(data) >= len(files[path]),
        }

    def remove(self, container_id: str) -> None:
        container = self.get(container_id)
        for process in [container.process, *container.execs.values()]:
            if process is not None and process.status == RUNNING:
                process.exit(128 + signals.SIGKILL)
        with self._lock:
            self.containers.pop(container_id, None)

    def destroy(self) -> None:
        for container_id in list(self.containers):
            self.remove(container_id)

    def state(self) -> dict:
        with self._lock:
            containers = list(self.containers.values())
        return {
            "containers": {c.id: c.describe() for c in containers},
            "hostname": self.network.hostname,
        }

    # -- for tests ----------------------------------------------------------------

    def process(self, container_id: str, exec_id: str | None = None) -> FakeProcess:
        """A container's main process (or an exec), as a test drives it."""
        container = self.get(container_id)
        process = container.process if exec_id is None else container.execs.get(exec_id)
        if process is None:
            raise LookupError(f"{process_key(container_id, exec_id)} never started")
        return process

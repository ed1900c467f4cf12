"""Running crun: create, start, exec, kill, delete.

Containers are started detached (`crun create` then `crun start`, `crun exec
--detach`), so that crun reports a failure to start (a missing executable, a
bad mount) as its own exit status and message, separate from the exit status
of the program. The detached process becomes a child of PID 1, which tells the
agent when it exits (see reaper.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import subprocess

from .errors import Failure
from .settings import Settings


class Crun:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.path("crun")
        # Console sockets live apart from the container's directory: under it, an
        # exec's path (containers/<64 hex>/execs/<id>/) is longer than a unix socket
        # path may be (108 bytes).
        self.consoles = settings.path("tty")

    def _argv(self, log: str | None, *args: str) -> list[str]:
        argv = [self.settings.crun, "--root", self.root, *self.settings.crun_args]
        if log:
            argv += ["--log", f"file:{log}", "--log-format", "json"]
        return argv + list(args)

    def launch(
        self, args: list[str], workdir: str, stdio: tuple, terminal: bool
    ) -> tuple[int, int | None]:
        """Run `crun create` or `crun exec --detach` (in `args`) in `workdir`.

        Returns the pid of the new process and, with a terminal, the pty master.
        `stdio` is (stdin, stdout, stderr) for the process when there is no terminal.
        """
        log = os.path.join(workdir, "crun.log")
        pid_file = os.path.join(workdir, "pid")
        for stale in (log, pid_file):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(stale)
        command, *rest = args
        extra = ["--pid-file", pid_file]
        listener = None
        if terminal:
            os.makedirs(self.consoles, mode=0o700, exist_ok=True)
            console = os.path.join(self.consoles, f"{os.urandom(8).hex()}.sock")
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(console)
            listener.listen(1)
            extra += ["--console-socket", console]
            stdio = (subprocess.DEVNULL,) * 3
        master = None
        try:
            proc = subprocess.Popen(
                self._argv(log, command, *extra, *rest),
                stdin=stdio[0],
                stdout=stdio[1],
                stderr=stdio[2],
                cwd=workdir,
                start_new_session=True,
            )
            if listener is not None:
                master = _receive_console(listener, proc)
            code = proc.wait()
            if code != 0:
                raise Failure(_crun_error(log, code))
            with open(pid_file) as file:
                pid = int(file.read().strip())
        except BaseException:
            if master is not None:
                os.close(master)
            raise
        finally:
            if listener is not None:
                listener.close()
                os.unlink(console)
        return pid, master

    def start(self, container_id: str) -> None:
        self._simple(["start", container_id])

    def kill(self, container_id: str, signum: int, all_processes: bool = False) -> None:
        self._simple(["kill", *(["--all"] if all_processes else []), container_id, str(signum)])

    def delete(self, container_id: str) -> None:
        self._simple(["delete", "--force", container_id])

    def _simple(self, args: list[str]) -> None:
        result = subprocess.run(
            self._argv(None, *args), stdin=subprocess.DEVNULL, capture_output=True
        )
        if result.returncode != 0:
            message = result.stderr.decode(errors="replace").strip().splitlines()
            raise Failure(f"crun: {message[-1] if message else f'{args[0]} failed'}")


def _receive_console(listener: socket.socket, proc: subprocess.Popen) -> int | None:
    """The pty master crun sends on the console socket; None if crun exits first."""
    pidfd = os.pidfd_open(proc.pid)
    try:
        ready, _, _ = select.select([listener.fileno(), pidfd], [], [])
        if listener.fileno() not in ready:
            # crun exited; it may still have connected just before.
            ready, _, _ = select.select([listener.fileno()], [], [], 0)
            if not ready:
                return None
        connection, _ = listener.accept()
        with connection:
            _, fds, _, _ = socket.recv_fds(connection, 1024, 1)
        if not fds:
            return None
        return fds[0]
    finally:
        os.close(pidfd)


def _crun_error(log: str, code: int) -> str:
    """The last error crun logged, as one line."""
    message = ""
    with contextlib.suppress(OSError):
        with open(log) as file:
            for line in file:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and record.get("level") == "error":
                    message = str(record.get("msg", ""))
    message = " ".join(message.split())
    return f"crun: {message}" if message else f"crun failed with exit status {code}"

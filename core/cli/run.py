"""`hyperctl run`: create a pod, start it, and attach to its first container (or not).

As the original's client/run.go: an image runs attached unless `-d`; a pod file
runs detached unless `-a`, printing `POD id is <id>` as soon as the pod exists
and `Time to run a POD is <n> ms` once it runs.

An attached `run` owns its container: however the session ends early (a
signal, hyperd refusing the start), the container does not go on alone. If it
never started (interrupted while the VM booted), the pod is removed: the user
never saw its id. If it runs, it is stopped; with `--rm` the pod is removed in
every case. Interrupts that come while this clean-up runs wait for it.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from typing import Any

from .booting import StartProgress
from .client import Client, CommandError, path_of
from .terminal import DETACH_KEYS, END, INTERRUPTS, Detached, Interrupted, Session

INTERRUPT_GRACE = 5.0  # seconds an interrupted run's container has to stop before SIGKILL


@contextlib.contextmanager
def interrupts_held():
    """Signals wait until the block is done (a pod id must not be lost half-way)."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPTS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def create(client: Client, spec: dict[str, Any], stdin_open: bool = False) -> dict[str, Any]:
    # transient: if its first start fails, hyperd removes it (nothing half-created).
    return client.request(
        "POST", "/pods", {"spec": spec, "start": False, "stdin_open": stdin_open, "transient": True}
    )


def run_detached(client: Client, spec: dict[str, Any], stdin_open: bool = False) -> int:
    began = time.monotonic()
    # Created, announced and its start asked for, or none of it: an interrupt from
    # here on leaves a pod whose id was printed and that hyperd starts.
    with interrupts_held():
        pod = create(client, spec, stdin_open)
        print(f"POD id is {pod['id']}", flush=True)
        started = client.send("POST", path_of("/pods/{}/start", pod["id"]))
    with StartProgress(client, pod["id"]):
        started()
    print(f"Time to run a POD is {int((time.monotonic() - began) * 1000)} ms")
    return 0


def run_attached(client: Client, spec: dict[str, Any], tty: bool, remove: bool) -> int:
    with interrupts_held():
        pod = create(client, spec, stdin_open=True)
    session: Session | None = None
    try:
        if not pod["containers"]:
            client.request("POST", path_of("/pods/{}/start", pod["id"]))
            print(f"POD id is {pod['id']}")
            return 0
        container = pod["containers"][0]
        conn = client.upgrade(path_of("/containers/{}/attach", container))
        failure: list[str] = []
        progress = StartProgress(client, pod["id"]).__enter__()

        def start() -> None:
            try:
                client.request("POST", path_of("/pods/{}/start", pod["id"]))
            except CommandError as e:
                failure.append(str(e))
                conn.shutdown()  # the session stops waiting for a process that never comes
            finally:
                progress.close()

        threading.Thread(target=start, daemon=True).start()
        # --rm is the client's own promise: detaching would leave the pod behind.
        session = Session(
            conn,
            tty,
            stdin=True,
            detach_keys=None if remove else DETACH_KEYS,
            interrupt=END,
            on_start=progress.close,
        )
        try:
            return session.run()
        except CommandError:
            if failure:
                raise CommandError(failure[0]) from None
            raise
        except Detached:
            print(f"detached; pod {pod['id']} keeps running", file=sys.stderr)
            return 0
        except Interrupted as e:
            with interrupts_held():
                end_interrupted(client, pod["id"], container, session.started, remove)
            return e.exit_code
    finally:
        if remove:
            remove_pod(client, pod["id"])


def end_interrupted(client: Client, pod: str, container: str, started: bool, remove: bool) -> None:
    """An interrupted run leaves nothing running that the user did not ask for."""
    if remove:
        return  # the caller removes the pod
    if not started:
        remove_pod(client, pod)  # its id was never shown: nothing is left behind
        return
    with contextlib.suppress(CommandError):  # it may have ended meanwhile
        client.request(
            "POST", path_of("/containers/{}/stop", container), query={"t": INTERRUPT_GRACE}
        )


def remove_pod(client: Client, pod: str) -> None:
    with interrupts_held(), contextlib.suppress(CommandError):  # a failed start removed it
        client.request("DELETE", path_of("/pods/{}", pod))

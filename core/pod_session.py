"""The daemon's live link to one pod's guest agent.

Events from the agent arrive on the client's reader thread; they are handed
to a worker thread here, because handling an exit takes store transactions
and may wake an operation that holds the pod's lock while it waits for
exactly that exit.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import AgentError
from .guest.agent.protocol import process_key
from .log import get_logger

if TYPE_CHECKING:
    from .agent.client import AgentClient
    from .drivers import Hypervisor, VMHandle


@dataclass(frozen=True)
class SessionCallbacks:
    """What a session reports, and to whom: the only way back to the runtime."""

    output: Callable[[str, str, bytes], None]  # key, "stdout" | "stderr", data
    container_exited: Callable[[str, int | None], None]  # container id, exit code
    exec_exited: Callable[[str, int | None], None]  # process key, exit code
    vm_lost: Callable[[str, str], None]  # pod id, why


class PodSession:
    agent: AgentClient  # the link, once connect() made it

    def __init__(
        self, pod_id: str, handle: VMHandle, hypervisor: Hypervisor, callbacks: SessionCallbacks
    ) -> None:
        self.pod_id = pod_id
        self.handle = handle
        self.hypervisor = hypervisor
        self.callbacks = callbacks
        self.stopping = False  # the VM is going away on purpose
        self._closed = False
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.log = get_logger(pod_id=pod_id)

    def connect(self, timeout: float) -> None:
        from .agent.client import AgentClient

        stream = self.hypervisor.connect_agent(self.handle, timeout)
        self.agent = AgentClient(stream, on_event=self._events.put, on_output=self._output)
        self.agent.wait_ready(timeout)
        threading.Thread(
            target=self._handle_events, name=f"events-{self.pod_id}", daemon=True
        ).start()
        threading.Thread(target=self._watch, name=f"watch-{self.pod_id}", daemon=True).start()
        self.hypervisor.watch(self.handle, lambda: self._lost("the VM exited"))

    def _output(self, key: str, fd: str, data: bytes) -> None:
        self.callbacks.output(key, fd, data)

    def _handle_events(self) -> None:
        while (event := self._events.get()) is not None:
            try:
                self._event(event)
            except Exception as e:  # noqa: BLE001 - a bad event must not stop the next ones
                self.log.error("agent event failed", agent_event=event, error=str(e))

    def _event(self, event: dict[str, Any]) -> None:
        if event.get("event") != "exit":
            return
        if event.get("exec"):
            key = process_key(event["container"], event["exec"])
            self.callbacks.exec_exited(key, event.get("code"))
        elif event.get("container"):
            self.callbacks.container_exited(event["container"], event.get("code"))

    def _watch(self) -> None:
        self.agent.closed.wait()
        self._lost("the guest agent connection closed")

    def _lost(self, reason: str) -> None:
        if self._closed or self.stopping:
            return
        if self.hypervisor.is_running(self.handle):
            self.log.warning("agent link lost, VM still running", reason=reason)
            return
        self._closed = True
        # Exits already received are applied before the pod is marked failed.
        self._events.put(None)
        threading.Thread(
            target=self.callbacks.vm_lost, args=(self.pod_id, reason), daemon=True
        ).start()

    def reconcile(self, running: Iterable[str]) -> None:
        """After re-adoption: apply the exits of `running` (the containers recorded
        running) that happened while no daemon listened."""
        state = self.agent.state().get("containers", {})
        for container_id in running:
            seen = state.get(container_id)
            if seen is None:
                self.callbacks.container_exited(container_id, None)
            elif seen.get("status") == "exited":
                self.callbacks.container_exited(container_id, seen.get("code"))

    def forget(self, container_id: str) -> None:
        """Remove the container from the guest if it is there (before a fresh start)."""
        try:
            self.agent.remove_container(container_id)
        except AgentError as e:
            self.log.debug(
                "nothing to remove in the guest", container_id=container_id, error=str(e)
            )

    def shutdown_guest(self) -> None:
        self.stopping = True
        try:
            self.agent.destroy_pod()
        except AgentError as e:  # the guest may power off before it answers
            self.log.debug("destroy_pod", error=str(e))

    def close(self) -> None:
        self._closed = True
        self._events.put(None)
        agent: AgentClient | None = getattr(self, "agent", None)
        if agent is not None:
            agent.close()

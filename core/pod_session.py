"""The daemon's live link to one pod's guest agent.

Events and output arrive on the agent client's delivery thread, in order. The
guest is not trusted: an exit or output is taken only for a container of this
very pod (named by its exact id), with a valid exit code; anything else is
ignored. A guest that breaks the protocol, whose agent link ends while its VM
keeps running, or that stops answering (a request timed out, and then a ping
too), fails the pod with the reason, and its VM is stopped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import AgentError, AgentTimeout
from .guest.agent.protocol import KEY_SEPARATOR, process_key
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
    pod_of: Callable[[str], str | None]  # the pod of the container with exactly this id


# An agent link that ends with no protocol violation: the VM is given this long to
# be seen exiting (the link's end is then the VM's), before the pod is failed.
VM_EXIT_GRACE = 10.0
# A request that timed out is followed by a ping: a guest that answers no ping in this
# long is not answering at all (a busy agent answers pings from a thread of their own).
PROBE_TIMEOUT = 30.0
STRANGERS_KEPT = 256  # container ids the guest named that are not this pod's
EXIT_CODES = range(-(2**31), 2**32)


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
        self.paused = False  # the VM is paused on purpose: its silence is expected
        self._probing = threading.Lock()
        self._closed = False
        self._vm_exited = threading.Event()
        self._members: set[str] = set()  # ids of this pod's containers the guest named
        self._strangers: list[str] = []  # ids it named that are not
        self.log = get_logger(pod_id=pod_id)

    def connect(self, timeout: float) -> None:
        from .agent.client import AgentClient

        stream = self.hypervisor.connect_agent(self.handle, timeout)
        self.agent = AgentClient(
            stream,
            on_event=self._event,
            on_output=self._output,
            on_timeout=self._timed_out,
            pod_id=self.pod_id,
        )
        self.agent.wait_ready(timeout)
        threading.Thread(target=self._watch, name=f"watch-{self.pod_id}", daemon=True).start()
        self.hypervisor.watch(self.handle, self._vm_exit)

    # -- what the guest sends (on the client's delivery thread) ---------------

    def _output(self, key: str, fd: str, data: bytes) -> None:
        if self._owns(key.split(KEY_SEPARATOR)[0]):
            self.callbacks.output(key, fd, data)
        else:
            self.agent.oddity("output for a container not in this pod", key=key[:80])

    def _event(self, event: dict[str, Any]) -> None:
        if event.get("event") != "exit":
            self.agent.oddity("an unknown event", name=str(event.get("event"))[:80])
            return
        container, exec_id, code = event.get("container"), event.get("exec"), event.get("code")
        if (
            not isinstance(container, str)
            or not self._owns(container)
            or not isinstance(exec_id, str | None)
            or not valid_exit_code(code)
        ):
            self.agent.oddity(
                "an exit that is not of this pod's processes", container=str(container)[:80]
            )
            return
        if exec_id:
            self.callbacks.exec_exited(process_key(container, exec_id), code)
        else:
            self.callbacks.container_exited(container, code)

    def _owns(self, container_id: str) -> bool:
        """Whether `container_id` is exactly the id of one of this pod's containers."""
        if container_id in self._members:
            return True
        if container_id in self._strangers:
            return False
        if self.callbacks.pod_of(container_id) != self.pod_id:
            self._strangers = [*self._strangers[-STRANGERS_KEPT + 1 :], container_id]
            return False
        self._members.add(container_id)
        return True

    # -- a guest that stops answering -------------------------------------------

    def _timed_out(self, op: str, waited: float) -> None:
        """A request got no answer in time: unless a ping is answered, the guest is gone."""
        if self.stopping or self.paused or not self._probing.acquire(blocking=False):
            return  # expected, or a probe is already under way
        threading.Thread(
            target=self._probe, args=(op, waited), name=f"probe-{self.pod_id}", daemon=True
        ).start()

    def _probe(self, op: str, waited: float) -> None:
        try:
            self.agent.ping(PROBE_TIMEOUT)
        except AgentTimeout:
            if not (self.stopping or self.paused):
                self.agent.give_up(
                    f"no answer to {op} within {waited:g} s, nor to a ping within"
                    f" {PROBE_TIMEOUT:g} s"
                )
        except AgentError:
            pass  # the link ended meanwhile: its end says why
        finally:
            self._probing.release()

    # -- the end of the link --------------------------------------------------

    def _vm_exit(self) -> None:
        self._vm_exited.set()
        self._lost("the VM exited")

    def _watch(self) -> None:
        self.agent.finished.wait()  # what came before the end was delivered
        if self.agent.failure:
            self._lost(f"guest agent misbehaved: {self.agent.failure}")
        elif not self._vm_exited.wait(VM_EXIT_GRACE):  # the link's end is not the VM's
            self._lost("the guest agent connection closed")

    def _lost(self, reason: str) -> None:
        if self._closed or self.stopping:
            return
        self._closed = True
        if self.hypervisor.is_running(self.handle):
            self.log.error("guest agent lost; stopping its VM", reason=reason)
        threading.Thread(target=self._fail, args=(reason,), daemon=True).start()

    def _fail(self, reason: str) -> None:
        # Exits the guest sent before its end are applied before the pod is failed.
        self.agent.finished.wait(VM_EXIT_GRACE)
        self.callbacks.vm_lost(self.pod_id, reason)

    def reconcile(self, running: Iterable[str]) -> None:
        """After re-adoption: apply the exits of `running` (the containers recorded
        running) that happened while no daemon listened."""
        state = self.agent.state().get("containers", {})
        for container_id in running:
            seen = state.get(container_id)
            if seen is None:
                self.callbacks.container_exited(container_id, None)
            elif seen.get("status") == "exited":
                code = seen.get("code")
                self.callbacks.container_exited(
                    container_id, code if valid_exit_code(code) else None
                )

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
        agent: AgentClient | None = getattr(self, "agent", None)
        if agent is not None:
            agent.close()


def valid_exit_code(code: Any) -> bool:
    """None (no code: the process was lost) or an int a process can exit with."""
    return code is None or (type(code) is int and code in EXIT_CODES)

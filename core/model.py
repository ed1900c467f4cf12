"""Runtime records of pods and containers, and the state machines they follow."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from .errors import Conflict


class PodState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"  # transient: the VM is being powered off
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ContainerState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


POD_TRANSITIONS: dict[PodState, set[PodState]] = {
    PodState.PENDING: {PodState.RUNNING, PodState.FAILED},
    PodState.RUNNING: {PodState.PAUSED, PodState.STOPPING, PodState.FAILED},
    PodState.PAUSED: {PodState.RUNNING, PodState.STOPPING, PodState.FAILED},
    PodState.STOPPING: {PodState.SUCCEEDED, PodState.FAILED},
    # A stopped pod can be started again: it boots a fresh VM.
    PodState.SUCCEEDED: {PodState.PENDING},
    PodState.FAILED: {PodState.PENDING},
}

CONTAINER_TRANSITIONS: dict[ContainerState, set[ContainerState]] = {
    ContainerState.PENDING: {ContainerState.RUNNING, ContainerState.FAILED},
    ContainerState.RUNNING: {ContainerState.SUCCEEDED, ContainerState.FAILED},
    # A finished container is started again as a fresh process in a fresh rootfs;
    # going back to pending is how a stopped pod's containers wait for its next boot.
    ContainerState.SUCCEEDED: {ContainerState.RUNNING, ContainerState.PENDING},
    ContainerState.FAILED: {ContainerState.RUNNING, ContainerState.PENDING},
}


def check_pod_transition(pod_id: str, old: PodState, new: PodState) -> None:
    if new not in POD_TRANSITIONS[old]:
        raise Conflict(f"pod {pod_id} is {old}, it cannot become {new}")


def check_container_transition(name: str, old: ContainerState, new: ContainerState) -> None:
    if new not in CONTAINER_TRANSITIONS[old]:
        raise Conflict(f"container {name} is {old}, it cannot become {new}")


def container_final_state(exit_code: int) -> ContainerState:
    return ContainerState.SUCCEEDED if exit_code == 0 else ContainerState.FAILED


def now() -> str:
    # Microseconds: containerd reports exit times, and an exit is timed to the event.
    return datetime.now(UTC).isoformat(timespec="microseconds")


class Pod(BaseModel):
    id: str
    name: str
    vm_name: str
    state: PodState = PodState.PENDING
    spec: dict[str, Any]  # the normalised pod spec, as given
    created: str = Field(default_factory=now)
    started: str | None = None
    finished: str | None = None
    vm: dict[str, Any] | None = None  # the hypervisor's handle, for re-adoption
    network: dict[str, Any] | None = None  # the NetworkAttachment
    netns: str | None = None  # a network namespace made by someone else, joined by the VM
    error: str | None = None  # why the pod failed
    # Created by `run`: if its first start does not complete, the pod is removed.
    transient: bool = False
    starting: bool = False  # a start is under way (its containers may not all run yet)
    removing: bool = False  # `rm` was asked: a restarted hyperd finishes what it began

    @property
    def guest_ip(self) -> str:
        return ((self.network or {}).get("address") or "").split("/")[0]


class Container(BaseModel):
    id: str
    name: str
    pod_id: str
    image: str
    image_id: str = ""
    state: ContainerState = ContainerState.PENDING
    spec: dict[str, Any]  # the container's part of the pod spec
    created: str = Field(default_factory=now)
    started: str | None = None
    finished: str | None = None
    exit_code: int | None = None
    stdin_open: bool = False  # keep stdin open for an attached client (`run` without -d)
    user_stopped: bool = False  # stopped on request: its restart policy does not apply

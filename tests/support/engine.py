"""Helpers of the engine tests (tests/unit/engine): waiting, and a recording hook plugin."""

from __future__ import annotations

import time
from collections.abc import Callable

from hypercontainer.errors import UserError
from hypercontainer.hookspecs import hookimpl

WAIT = 5.0  # seconds: far beyond what any step here takes


def eventually(condition: Callable[[], object], what: str) -> None:
    """Wait for something another thread does (an exit, the pod ending), polling briefly."""
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {WAIT:g} s")
        time.sleep(0.002)


class Recorder:
    """A hook plugin that records every post-hook, and vetoes the pre-hooks it is told."""

    def __init__(self, veto: tuple[str, ...] = ()) -> None:
        self.seen: list[str] = []
        self.veto = veto

    def _pre(self, hook: str) -> None:
        if hook in self.veto:
            raise UserError(f"{hook} vetoed by the test")

    @hookimpl
    def pod_pre_create(self, spec):
        self._pre("pod_pre_create")

    @hookimpl
    def pod_pre_start(self, pod):
        self._pre("pod_pre_start")

    @hookimpl
    def pod_pre_stop(self, pod):
        self._pre("pod_pre_stop")

    @hookimpl
    def pod_pre_remove(self, pod):
        self._pre("pod_pre_remove")

    @hookimpl
    def container_pre_create(self, pod, spec):
        self._pre("container_pre_create")

    @hookimpl
    def container_pre_start(self, container):
        self._pre("container_pre_start")

    @hookimpl
    def container_pre_stop(self, container):
        self._pre("container_pre_stop")

    @hookimpl
    def container_pre_remove(self, container):
        self._pre("container_pre_remove")

    @hookimpl
    def pod_post_create(self, pod):
        self.seen.append("pod_post_create")

    @hookimpl
    def pod_post_start(self, pod):
        self.seen.append("pod_post_start")

    @hookimpl
    def pod_post_stop(self, pod):
        self.seen.append(f"pod_post_stop {pod.state}")

    @hookimpl
    def pod_post_remove(self, pod):
        self.seen.append("pod_post_remove")

    @hookimpl
    def container_post_create(self, container):
        self.seen.append("container_post_create")

    @hookimpl
    def container_post_start(self, container):
        self.seen.append("container_post_start")

    @hookimpl
    def container_post_stop(self, container, exit_code):
        self.seen.append(f"container_post_stop {exit_code}")

    @hookimpl
    def container_post_remove(self, container):
        self.seen.append("container_post_remove")

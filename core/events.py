"""Lifecycle events, as `hyperctl events` shows them: a built-in hook plugin.

It listens to the post-hooks every third-party plugin can listen to, and keeps
the latest events in memory for followers: `GET /events` replays those since a
time, then streams new ones. Nothing is written to disk; a restarted hyperd
starts with an empty history. Blocking the plugin by name (`disabled_hooks =
["events"]`) turns it off.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from .hookspecs import hookimpl
from .logs import stamp

NAME = "events"
KEPT = 10_000  # events replayed to a new follower, at most


def timestamp() -> str:
    return stamp(datetime.now(UTC))


class Events:
    def __init__(self, kept: int = KEPT) -> None:
        self._history: deque[dict[str, Any]] = deque(maxlen=kept)
        self._count = 0  # events ever recorded: a follower's position
        self._changed = threading.Condition()

    def record(self, kind: str, action: str, **fields: Any) -> None:
        # Every event has every key, so one --format template fits them all.
        event = {
            "time": timestamp(),
            "type": kind,
            "action": action,
            "id": "",
            "name": "",
            "pod": None,
            "state": None,
            "exit_code": None,
            **fields,
        }
        with self._changed:
            self._history.append(event)
            self._count += 1
            self._changed.notify_all()

    def follow(
        self,
        since: str = "",
        until: str = "",
        follow: bool = True,
        stop: threading.Event | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Events from `since` (a logs.stamp() text; "" for none of the past), then new
        ones until `until` or `stop`. Times compare as text: they share one format."""
        with self._changed:
            past = [e for e in self._history if since and e["time"] >= since]
            position = self._count
        for event in past:
            if until and event["time"] > until:
                return
            yield event
        while follow and not (stop and stop.is_set()):
            with self._changed:
                if self._count == position:
                    self._changed.wait(timeout=1.0)  # also rechecks `stop` and `until`
                new = min(self._count - position, len(self._history))
                fresh = list(self._history)[len(self._history) - new :]
                position = self._count
            for event in fresh:
                if until and event["time"] > until:
                    return
                yield event
            if until and timestamp() > until:
                return

    # -- the hooks ---------------------------------------------------------------

    def _pod(self, action: str, pod) -> None:
        self.record("pod", action, id=pod.id, name=pod.name, state=str(pod.state))

    def _container(self, action: str, container, **fields: Any) -> None:
        self.record(
            "container",
            action,
            id=container.id,
            name=container.name,
            pod=container.pod_id,
            **fields,
        )

    @hookimpl
    def pod_post_create(self, pod) -> None:
        self._pod("create", pod)

    @hookimpl
    def pod_post_start(self, pod) -> None:
        self._pod("start", pod)

    @hookimpl
    def pod_post_stop(self, pod) -> None:
        self._pod("stop", pod)

    @hookimpl
    def pod_post_remove(self, pod) -> None:
        self._pod("remove", pod)

    @hookimpl
    def container_post_create(self, container) -> None:
        self._container("create", container)

    @hookimpl
    def container_post_start(self, container) -> None:
        self._container("start", container)

    @hookimpl
    def container_post_stop(self, container, exit_code) -> None:
        self._container("die", container, exit_code=exit_code)

    @hookimpl
    def container_post_remove(self, container) -> None:
        self._container("remove", container)

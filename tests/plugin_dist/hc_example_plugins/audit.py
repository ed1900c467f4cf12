"""Lifecycle audit: one JSON line per event, appended to $HC_AUDIT_LOG (if set).

Also refuses pods labelled `audit/deny` in pod_pre_create, showing that a
pre-hook can veto an operation with a one-line reason.
"""

from __future__ import annotations

import json
import os

from hypercontainer.errors import UserError
from hypercontainer.hookspecs import hookimpl


def _record(event: str, **fields) -> None:
    path = os.environ.get("HC_AUDIT_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"event": event, **fields}) + "\n")


@hookimpl
def pod_pre_create(spec):
    if "audit/deny" in spec.labels:
        reason = spec.labels["audit/deny"]
        raise UserError(f"audit: pods labelled audit/deny are refused ({reason})")


@hookimpl
def pod_post_start(pod):
    _record("pod_post_start", pod=pod.id)


@hookimpl
def container_post_start(container):
    _record("container_post_start", pod=container.pod_id, container=container.name)


@hookimpl
def container_post_stop(container, exit_code):
    _record("container_post_stop", container=container.name, exit_code=exit_code)


@hookimpl
def pod_post_remove(pod):
    _record("pod_post_remove", pod=pod.id)

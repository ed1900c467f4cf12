"""Lifecycle hooks: any number of listeners, registered through pluggy.

Pre-hooks run before anything changes and may veto by raising UserError.
Post-hooks are best-effort: a failing listener is logged and never breaks
the pod. Third parties register modules under the entry-point group
`hypercontainer.hooks`.
"""

from __future__ import annotations

import pluggy

PROJECT = "hypercontainer"
GROUP = "hypercontainer.hooks"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def pod_pre_create(spec):
    """A pod is about to be created from `spec` (a PodSpec). Raise UserError to veto."""


@hookspec
def pod_post_create(pod):
    """The pod record exists (state pending)."""


@hookspec
def pod_pre_start(pod):
    """The pod's VM is about to boot. Raise UserError to veto."""


@hookspec
def pod_post_start(pod):
    """The pod's VM runs and its agent answered."""


@hookspec
def pod_pre_stop(pod):
    """The pod is about to be stopped. Raise UserError to veto."""


@hookspec
def pod_post_stop(pod):
    """The pod's VM is gone (state succeeded or failed)."""


@hookspec
def pod_pre_remove(pod):
    """The pod is about to be removed. Raise UserError to veto."""


@hookspec
def pod_post_remove(pod):
    """The pod and everything it owned are gone."""


@hookspec
def container_pre_create(pod, spec):
    """A container from `spec` (a ContainerSpec) is about to be created in `pod`."""


@hookspec
def container_post_create(container):
    """The container record exists (state pending)."""


@hookspec
def container_pre_start(container):
    """The container is about to start. Raise UserError to veto."""


@hookspec
def container_post_start(container):
    """The container runs."""


@hookspec
def container_pre_stop(container):
    """The container is about to be stopped. Raise UserError to veto."""


@hookspec
def container_post_stop(container, exit_code):
    """The container's process ended with `exit_code`."""


@hookspec
def container_pre_remove(container):
    """The container is about to be removed. Raise UserError to veto."""


@hookspec
def container_post_remove(container):
    """The container is gone."""


# The hooks by kind: a pre-hook may veto; a post-hook is best-effort (core/hooks.py).
PRE_HOOKS = tuple(name for name in tuple(globals()) if "_pre_" in name)
POST_HOOKS = tuple(name for name in tuple(globals()) if "_post_" in name)

"""The hook manager: listeners from entry points, called through one typed method per hook.

Pre-hooks run through pluggy as they are (wrappers included): a listener's
UserError vetoes; any other exception becomes a one-line `ListenerFailed`.
Post-hooks are best-effort: each listener runs on its own, in pluggy's order
(last registered first, tryfirst/trylast respected), and a failing one is
logged (and reported to `on_failure`) without stopping the others. A wrapper
cannot be best-effort, so a plugin that wraps a post-hook is refused when it
registers, as is one naming a hook that does not exist.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import pluggy

from . import hookspecs
from .errors import UserError
from .log import get_logger

if TYPE_CHECKING:
    from .model import Container, Pod
    from .spec import Container as ContainerSpec
    from .spec import PodSpec

log = get_logger()

FailureCallback = Callable[[str, str, BaseException], None]  # hook, plugin name, error


class ListenerFailed(UserError):
    """A pre-hook listener raised something other than a veto (a bug in the plugin)."""


class PluginRefused(UserError):
    """A hook plugin that does not fit the hook specifications."""


class Hooks:
    def __init__(
        self,
        disabled: Iterable[str] = (),
        load_entry_points: bool = True,
        on_failure: FailureCallback | None = None,
    ) -> None:
        self.manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.manager.add_hookspecs(hookspecs)
        self.on_failure = on_failure
        for name in disabled:
            self.manager.set_blocked(name)
        if load_entry_points:
            try:
                self.manager.load_setuptools_entrypoints(hookspecs.GROUP)
            except pluggy.PluginValidationError as e:
                raise PluginRefused(f"hook plugin {e.plugin!r}: {_first_line(e)}") from None
            for name, plugin in self.manager.list_name_plugin():
                if plugin is not hookspecs:
                    self._validate(plugin, name)
        if os.environ.get("HYPERCONTAINER_TRACE_HOOKS"):
            self.manager.trace.root.setwriter(lambda msg: log.debug("hook", trace=msg))
            self.manager.enable_tracing()

    def register(self, plugin: object, name: str | None = None) -> None:
        """Add a plugin; one that does not fit the specifications is refused, not kept."""
        try:
            registered = self.manager.register(plugin, name)
        except pluggy.PluginValidationError as e:
            raise PluginRefused(f"hook plugin {name or plugin!r}: {_first_line(e)}") from None
        if registered is not None:
            self._validate(plugin, registered)

    def _validate(self, plugin: object, name: str) -> None:
        try:
            self.manager.check_pending()
            for hook in hookspecs.POST_HOOKS:
                for impl in getattr(self.manager.hook, hook).get_hookimpls():
                    if impl.plugin is plugin and (impl.hookwrapper or impl.wrapper):
                        raise pluggy.PluginValidationError(
                            plugin,
                            f"{hook} is a wrapper; a post-hook takes no wrappers "
                            "(each listener runs on its own, best-effort)",
                        )
        except pluggy.PluginValidationError as e:
            self.manager.unregister(plugin)
            raise PluginRefused(f"hook plugin {name}: {_first_line(e)}") from None

    def names(self) -> list[str]:
        return sorted(n for n, p in self.manager.list_name_plugin() if p is not hookspecs)

    # -- calling ----------------------------------------------------------------

    def _pre(self, hook: str, **kwargs: Any) -> None:
        caller = getattr(self.manager.hook, hook)  # outside the try: a typo is our bug
        try:
            caller(**kwargs)
        except UserError:
            raise
        except Exception as e:
            raise ListenerFailed(f"{hook} listener failed: {_first_line(e)}") from e

    def _post(self, hook: str, **kwargs: Any) -> None:
        # pluggy calls the last registered first: get_hookimpls() lists them the other way.
        for impl in reversed(getattr(self.manager.hook, hook).get_hookimpls()):
            try:
                impl.function(*[kwargs[arg] for arg in impl.argnames])
            except Exception as e:  # noqa: BLE001 - best-effort by design
                log.warning(
                    "hook listener failed", hook=hook, plugin=impl.plugin_name, error=str(e)
                )
                if self.on_failure is not None:
                    self.on_failure(hook, impl.plugin_name, e)

    # -- one method per hook (hookspecs.py documents each) --------------------------

    def pod_pre_create(self, spec: PodSpec) -> None:
        self._pre("pod_pre_create", spec=spec)

    def pod_post_create(self, pod: Pod) -> None:
        self._post("pod_post_create", pod=pod)

    def pod_pre_start(self, pod: Pod) -> None:
        self._pre("pod_pre_start", pod=pod)

    def pod_post_start(self, pod: Pod) -> None:
        self._post("pod_post_start", pod=pod)

    def pod_pre_stop(self, pod: Pod) -> None:
        self._pre("pod_pre_stop", pod=pod)

    def pod_post_stop(self, pod: Pod) -> None:
        self._post("pod_post_stop", pod=pod)

    def pod_pre_remove(self, pod: Pod) -> None:
        self._pre("pod_pre_remove", pod=pod)

    def pod_post_remove(self, pod: Pod) -> None:
        self._post("pod_post_remove", pod=pod)

    def container_pre_create(self, pod: Pod, spec: ContainerSpec) -> None:
        self._pre("container_pre_create", pod=pod, spec=spec)

    def container_post_create(self, container: Container) -> None:
        self._post("container_post_create", container=container)

    def container_pre_start(self, container: Container) -> None:
        self._pre("container_pre_start", container=container)

    def container_post_start(self, container: Container) -> None:
        self._post("container_post_start", container=container)

    def container_pre_stop(self, container: Container) -> None:
        self._pre("container_pre_stop", container=container)

    def container_post_stop(self, container: Container, exit_code: int | None) -> None:
        self._post("container_post_stop", container=container, exit_code=exit_code)

    def container_pre_remove(self, container: Container) -> None:
        self._pre("container_pre_remove", container=container)

    def container_post_remove(self, container: Container) -> None:
        self._post("container_post_remove", container=container)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__

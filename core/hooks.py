"""The hook manager: listeners from entry points, pre-hooks that veto, best-effort post-hooks."""

from __future__ import annotations

import os
from collections.abc import Iterable

import pluggy

from . import hookspecs
from .errors import UserError
from .log import get_logger

log = get_logger()


class Hooks:
    def __init__(self, disabled: Iterable[str] = (), load_entry_points: bool = True) -> None:
        self.manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.manager.add_hookspecs(hookspecs)
        for name in disabled:
            self.manager.set_blocked(name)
        if load_entry_points:
            self.manager.load_setuptools_entrypoints(hookspecs.GROUP)
        self.manager.check_pending()
        if os.environ.get("HYPERCONTAINER_TRACE_HOOKS"):
            self.manager.trace.root.setwriter(lambda msg: log.debug("hook", trace=msg))
            self.manager.enable_tracing()

    def register(self, plugin: object, name: str | None = None) -> None:
        self.manager.register(plugin, name)
        self.manager.check_pending()

    def names(self) -> list[str]:
        return sorted(n for n, p in self.manager.list_name_plugin() if p is not hookspecs)

    def pre(self, hook: str, **kwargs) -> None:
        """Run a pre-hook; a listener's UserError vetoes the operation."""
        try:
            getattr(self.manager.hook, hook)(**kwargs)
        except UserError:
            raise
        except Exception as e:
            raise UserError(f"{hook} listener failed: {e}") from e

    def post(self, hook: str, **kwargs) -> None:
        """Run a post-hook; each listener's failure is logged and ignored."""
        for impl in getattr(self.manager.hook, hook).get_hookimpls():
            try:
                impl.function(*[kwargs[arg] for arg in impl.argnames])
            except Exception as e:  # noqa: BLE001 - best-effort by design
                log.warning("hook listener failed", hook=hook, plugin=impl.plugin_name,
                            error=str(e))

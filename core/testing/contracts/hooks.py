"""The contract of a hook plugin (rules K1-K5, E1): it registers cleanly, and the whole life
of a pod on the real engine (fake VMs) runs with it, its vetoes leaving no state."""

from __future__ import annotations

import inspect

import pluggy
import pytest

from ... import hookspecs
from ...errors import Conflict, NotFound, UserError
from ...hooks import Hooks, ListenerFailed, PluginRefused
from ...model import ContainerState
from ..engine import Engine
from ..rules import broken, check
from .common import one_line


def implementations(plugin: object) -> dict[str, object]:
    """The plugin's attributes marked as hook implementations, by hook name."""
    marker = f"{hookspecs.PROJECT}_impl"
    found = {}
    for attribute in dir(plugin):
        value = getattr(plugin, attribute, None)
        if callable(value) and hasattr(value, marker):
            opts = getattr(value, marker) or {}
            found[opts.get("specname") or attribute] = value
    return found


def test_every_implementation_names_a_hook(hc_plugin):
    unknown = sorted(
        set(implementations(hc_plugin)) - set(hookspecs.PRE_HOOKS) - set(hookspecs.POST_HOOKS)
    )
    check(not unknown, "K1", f"no such hook: {', '.join(unknown)} (hookspecs.py lists them)")


def test_implementations_take_only_the_hooks_arguments(hc_plugin):
    for name, function in implementations(hc_plugin).items():
        spec = getattr(hookspecs, name, None)
        if spec is None:
            continue
        given = set(inspect.signature(spec).parameters)
        taken = set(inspect.signature(function).parameters) - {"self"}
        check(
            taken <= given,
            "K2",
            f"{name} takes {sorted(taken - given)}; the hook passes only {sorted(given)}",
        )


def test_the_plugin_registers(hc_plugin, hc_selection):
    hooks = Hooks(load_entry_points=False)
    try:
        hooks.register(hc_plugin, hc_selection.name)
    except (PluginRefused, pluggy.PluginValidationError) as e:
        broken("K3", str(e))
    check(hc_selection.name in hooks.names(), "K3", "the plugin is not listed once registered")


@pytest.fixture
def engine(tmp_path, hc_plugin):
    try:
        engine = Engine(tmp_path, plugins=[hc_plugin])
    except PluginRefused as e:
        broken("K3", str(e))
    engine.failures = []
    engine.runtime.hooks.on_failure = lambda hook, plugin, error: engine.failures.append(
        f"{hook} ({plugin}): {type(error).__name__}: {error}"
    )
    yield engine
    engine.close()


def snapshot(engine: Engine) -> tuple:
    store = engine.runtime.store
    return (
        [(p.id, p.state, p.network) for p in store.pods()],
        [(c.id, c.state) for c in store.containers()],
        sorted(vm.id for vm in engine.host.running()),
    )


def vetoed(engine: Engine, operation: str, call) -> bool:
    """Run one step; True if a pre-hook vetoed it (then checked to have changed nothing)."""
    before = snapshot(engine)
    try:
        call()
    except (Conflict, NotFound):
        raise  # the engine refusing, not a plugin
    except ListenerFailed as e:
        broken("K5", f"{operation}: a listener raised instead of vetoing: {e}")
    except UserError as e:
        one_line("K5", e)
        after = snapshot(engine)
        check(
            after == before,
            "E1",
            f"{operation} was vetoed ({e}) but the state changed: {before} became {after}",
        )
        print(f"hc-kit: {operation} vetoed: {e}")  # shown with -rA
        return True
    return False


def test_a_pods_whole_life_with_the_plugin(engine, hc_pod_labels):
    runtime = engine.runtime
    spec = engine.pod("sleep", "60", labels=hc_pod_labels)
    pod = None

    def create():
        nonlocal pod
        pod = runtime.create_pod(spec)

    if vetoed(engine, "create_pod", create):
        return
    assert pod is not None
    if vetoed(engine, "start_pod", lambda: runtime.start_pod(pod.id)):
        return
    main = runtime.store.containers(pod.id)[0]
    added = None

    def add():
        nonlocal added
        added = runtime.containers.create(
            pod.id, engine.container("sleep", "60", labels=hc_pod_labels)
        )

    if not vetoed(engine, "create_container", add):
        assert added is not None
        for operation, call in (
            ("start_container", lambda: runtime.containers.start(added.id)),
            ("stop_container", lambda: runtime.containers.stop(added.id, 1)),
            ("remove_container", lambda: runtime.containers.remove(added.id)),
        ):
            if vetoed(engine, operation, call):
                break
    check(
        runtime.store.container(main.id).state == ContainerState.RUNNING,
        "K4",
        "the pod's container is not running",
    )
    for operation, call in (
        ("stop_pod", lambda: runtime.stop_pod(pod.id, timeout=1)),
        ("remove_pod", lambda: runtime.remove_pod(pod.id)),
    ):
        if runtime.store.pods() and vetoed(engine, operation, call):
            break
    check(not engine.failures, "K4", "; ".join(engine.failures))

"""Hooks: pre-hooks veto, post-hooks are best-effort. Drivers: chosen by name, checked."""

import inspect

import pytest
from hypercontainer import config, drivers, hookspecs
from hypercontainer.drivers import Cap
from hypercontainer.errors import UserError
from hypercontainer.hooks import Hooks, ListenerFailed, PluginRefused
from hypercontainer.hookspecs import hookimpl


class Veto:
    @hookimpl
    def pod_pre_create(self, spec):
        raise UserError("no pods on Fridays")


class Broken:
    @hookimpl
    def pod_post_start(self, pod):
        raise RuntimeError("listener bug")


class Recorder:
    def __init__(self):
        self.seen = []

    @hookimpl
    def pod_post_start(self, pod):
        self.seen.append(pod)


def test_pre_hook_vetoes_with_its_message():
    hooks = Hooks(load_entry_points=False)
    hooks.register(Veto())
    with pytest.raises(UserError, match="no pods on Fridays"):
        hooks.pod_pre_create(None)


def test_a_failing_post_listener_does_not_stop_the_others():
    hooks = Hooks(load_entry_points=False)
    recorder = Recorder()
    hooks.register(Broken(), "broken")
    hooks.register(recorder, "recorder")
    hooks.pod_post_start("p1")
    assert recorder.seen == ["p1"]


def test_unknown_hook_names_are_refused_and_not_kept():
    class Typo:
        @hookimpl
        def pod_post_strat(self, pod):
            pass

    hooks = Hooks(load_entry_points=False)
    with pytest.raises(PluginRefused, match="typo: unknown hook 'pod_post_strat'"):
        hooks.register(Typo(), "typo")
    assert hooks.names() == []


def test_post_listeners_run_in_pluggys_order():
    order = []

    def listener(name, **opts):
        class Listener:
            @hookimpl(**opts)
            def pod_post_start(self, pod):
                order.append(name)

        return Listener()

    hooks = Hooks(load_entry_points=False)
    for name, opts in (
        ("first", {}),
        ("second", {}),
        ("last", {"trylast": True}),
        ("early", {"tryfirst": True}),
    ):
        hooks.register(listener(name, **opts), name)
    hooks.pod_post_start("p")
    ours = list(order)
    order.clear()
    hooks.manager.hook.pod_post_start(pod="p")  # pluggy's own call
    assert ours == order == ["early", "second", "first", "last"]


def test_a_post_hook_wrapper_is_refused_and_a_pre_hook_wrapper_works():
    seen = []

    class PostWrapper:
        @hookimpl(wrapper=True)
        def pod_post_start(self, pod):
            yield

    class PreWrapper:
        @hookimpl(wrapper=True)
        def pod_pre_start(self, pod):
            seen.append("before")
            try:
                return (yield)
            finally:
                seen.append("after")

    hooks = Hooks(load_entry_points=False)
    with pytest.raises(PluginRefused, match="pod_post_start is a wrapper"):
        hooks.register(PostWrapper(), "post-wrapper")
    assert hooks.names() == []
    hooks.register(PreWrapper(), "pre-wrapper")
    hooks.register(Veto2(), "veto")
    with pytest.raises(UserError, match="not now"):
        hooks.pod_pre_start("p")
    assert seen == ["before", "after"]


class Veto2:
    @hookimpl
    def pod_pre_start(self, pod):
        raise UserError("not now")


def test_a_crashing_pre_listener_is_a_failure_not_a_veto_and_post_failures_are_reported():
    class Crash:
        @hookimpl
        def pod_pre_stop(self, pod):
            raise KeyError("bug")

    failures = []
    hooks = Hooks(
        load_entry_points=False,
        on_failure=lambda hook, plugin, error: failures.append((hook, plugin)),
    )
    hooks.register(Crash(), "crash")
    hooks.register(Broken(), "broken")
    with pytest.raises(ListenerFailed, match="pod_pre_stop listener failed: 'bug'"):
        hooks.pod_pre_stop("p")
    hooks.pod_post_start("p")
    assert failures == [("pod_post_start", "broken")]


def test_every_hook_has_its_typed_method():
    specs = {name for name in dir(hookspecs) if name.startswith(("pod_", "container_"))}
    assert specs == set(hookspecs.PRE_HOOKS) | set(hookspecs.POST_HOOKS)
    for name in specs:
        method = getattr(Hooks, name)
        spec_args = inspect.signature(getattr(hookspecs, name)).parameters
        assert list(inspect.signature(method).parameters)[1:] == list(spec_args), name


def test_a_missing_driver_lists_the_installed_ones():
    cfg = config.load(environ={})
    with pytest.raises(UserError) as e:
        drivers.load("hypervisor", "firecracker", cfg)
    installed = ", ".join(drivers.installed("hypervisor"))
    assert str(e.value) == f"no hypervisor driver 'firecracker'; installed: {installed}"
    assert {"qemu", "cloud-hypervisor"} <= set(drivers.installed("hypervisor"))


def test_cloud_hypervisor_cannot_serve_user_networking():
    cfg = config.load(environ={})
    ch = drivers.load("hypervisor", "cloud-hypervisor", cfg)
    user = drivers.load("network", "user", cfg)
    with pytest.raises(UserError, match="cannot serve network user: it lacks user-network"):
        drivers.check_combination(ch, user)
    assert Cap.USER_NETWORK not in ch.capabilities

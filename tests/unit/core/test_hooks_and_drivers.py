"""Hooks: pre-hooks veto, post-hooks are best-effort. Drivers: chosen by name, checked."""

import pytest
from hypercontainer import config, drivers
from hypercontainer.drivers import Cap
from hypercontainer.errors import UserError
from hypercontainer.hooks import Hooks
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
        hooks.pre("pod_pre_create", spec=None)


def test_a_failing_post_listener_does_not_stop_the_others():
    hooks = Hooks(load_entry_points=False)
    recorder = Recorder()
    hooks.register(Broken(), "broken")
    hooks.register(recorder, "recorder")
    hooks.post("pod_post_start", pod="p1")
    assert recorder.seen == ["p1"]


def test_unknown_hook_names_are_refused():
    class Typo:
        @hookimpl
        def pod_post_strat(self, pod):
            pass

    hooks = Hooks(load_entry_points=False)
    with pytest.raises(Exception, match="unknown hook"):
        hooks.register(Typo())


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

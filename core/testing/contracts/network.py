"""The contract of a network driver (rules N1-N8, D1, D2, E1), checked on the real driver
with the fake hypervisor standing in for the VM."""

from __future__ import annotations

import json
import re

import pytest

from ...drivers import Cap, Network, NetworkAttachment, PortForward
from ...errors import HyperError, UserError
from ...hookspecs import hookimpl
from ..engine import Engine, fake_config
from ..rules import broken, check
from .common import check_declarations, check_settings, one_line

KIND_NEEDS = {"user": Cap.USER_NETWORK, "tap": Cap.TAP_NETWORK}
MAC = re.compile(r"([0-9a-f]{2}:){5}[0-9a-f]{2}")
FORWARD = PortForward("tcp", "", 0, 80)  # host port 0: replaced by a free one per test


@pytest.fixture
def config(hc_make_config):
    return hc_make_config()


@pytest.fixture
def driver(hc_plugin, config) -> Network:
    try:
        return hc_plugin(config)
    except UserError as e:
        pytest.skip(f"the driver refuses this machine or configuration: {e}")


@pytest.fixture
def forward() -> PortForward:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return PortForward(FORWARD.protocol, "", port, FORWARD.guest_port)


def attach(driver: Network, pod_id: str, forwards=()) -> NetworkAttachment:
    try:
        return driver.attach(pod_id, list(forwards))
    except UserError as e:
        if Cap.ROOT in driver.requires and "root" in str(e):
            pytest.skip(f"{driver.name} needs root: {e}")
        raise


def test_declarations(hc_plugin):
    check_declarations(hc_plugin, Network)


def test_settings(hc_plugin, hc_make_config):
    check_settings(hc_plugin, hc_make_config())


def test_attach_describes_one_interface(driver):
    attachment = attach(driver, "kit-n1")
    try:
        check(
            isinstance(attachment, NetworkAttachment),
            "N1",
            f"attach() returned {type(attachment).__name__}",
        )
        check(
            attachment.kind in ("none", "user", "tap"),
            "N1",
            f"kind {attachment.kind!r} is none of none, user, tap",
        )
        if attachment.kind != "none":
            check(
                MAC.fullmatch(attachment.mac or ""),
                "N1",
                f"mac {attachment.mac!r} is not a lower-case MAC address",
            )
        try:
            stored = json.loads(json.dumps(attachment.to_dict()))
            again = NetworkAttachment.from_dict(stored)
        except (TypeError, ValueError) as e:
            broken("N1", f"the attachment does not survive the store: {e}")
        check(again == attachment, "N1", f"stored {attachment} came back as {again}")
        needed = KIND_NEEDS.get(attachment.kind)
        check(
            needed is None or needed in attachment.requires | driver.requires,
            "N7",
            f"a {attachment.kind} attachment must require {needed!r}; it requires "
            f"{sorted(attachment.requires)}, the driver {sorted(driver.requires)}",
        )
    finally:
        driver.detach("kit-n1", attachment)


def test_attach_twice_is_the_same_interface(driver):
    first = attach(driver, "kit-n2")
    try:
        second = driver.attach("kit-n2", [])
        check(
            (second.kind, second.tap) == (first.kind, first.tap),
            "N2",
            f"a second attach() of one pod gave a second interface: {second}, "
            f"the first was {first}",
        )
    finally:
        driver.detach("kit-n2", first)


def test_detach_is_idempotent(driver):
    attachment = attach(driver, "kit-n3")
    driver.detach("kit-n3", attachment)
    for what, given in (
        ("a second detach()", attachment),
        ("detach() of a pod never attached", NetworkAttachment(kind="none")),
        ("detach() with only the kind known", NetworkAttachment(kind=attachment.kind)),
    ):
        try:
            driver.detach("kit-n3" if "second" in what else "kit-never", given)
        except Exception as e:  # noqa: BLE001 - any exception breaks the rule
            broken("N3", f"{what} raised {type(e).__name__}: {e}")


def test_a_restarted_daemon_adopts_then_detaches(driver, hc_plugin, config):
    attachment = attach(driver, "kit-n4")
    stored = NetworkAttachment.from_dict(json.loads(json.dumps(attachment.to_dict())))
    restarted = hc_plugin(config)
    try:
        restarted.adopt("kit-n4", stored)
        restarted.recover({"kit-n4"})
        restarted.recover({"kit-n4"})
    except Exception as e:  # noqa: BLE001
        broken("N4", f"adopt() or recover() of the pod raised {type(e).__name__}: {e}")
    try:
        restarted.detach("kit-n4", stored)
    except Exception as e:  # noqa: BLE001
        broken("N4", f"detach() after adopt() raised {type(e).__name__}: {e}")
    try:
        restarted.recover(set())
    except Exception as e:  # noqa: BLE001
        broken("N5", f"recover() of nothing raised {type(e).__name__}: {e}")


def test_port_mappings_are_applied_or_refused(driver, forward):
    try:
        attachment = attach(driver, "kit-n6", [forward])
    except UserError as e:
        one_line("N6", e)
        return  # the driver has no port mappings, and says so
    try:
        listed = driver.forwards("kit-n6", attachment)
        check(
            any(
                f.host_port == forward.host_port and f.guest_port == forward.guest_port
                for f in listed
            ),
            "N6",
            f"{forward} is not among the listed {listed}",
        )
        check(
            attachment.kind != "user" or Cap.HOST_FORWARDS in attachment.requires,
            "N7",
            "a user attachment with forwards must require host-forwards",
        )
    finally:
        driver.detach("kit-n6", attachment)


# -- on the engine, with the fake hypervisor ----------------------------------


@pytest.fixture
def engine(tmp_path, hc_plugin, config, hc_pod_labels):
    engine = Engine(
        tmp_path, config=_engine_config(config, tmp_path), network=lambda c: _made(hc_plugin, c)
    )
    engine.labels = hc_pod_labels
    yield engine
    engine.close()


def _engine_config(config, tmp_path):
    fake = fake_config(tmp_path)
    return config.model_copy(update={"guest": fake.guest, "hypervisor": "fake"})


def _made(cls, config):
    try:
        return cls(config)
    except UserError as e:
        pytest.skip(f"the driver refuses this machine or configuration: {e}")


def _skip_without_root(engine, error: HyperError) -> None:
    if Cap.ROOT in engine.runtime.network.requires and "root" in str(error):
        pytest.skip(f"needs root: {error}")


def test_a_pod_runs_on_the_network(engine):
    try:
        pod = engine.runtime.run_pod(engine.pod("sleep", "60", labels=engine.labels))
    except HyperError as e:
        _skip_without_root(engine, e)
        raise
    guest = engine.host.vm(pod.id).guest
    recorded = NetworkAttachment.from_dict(engine.runtime.store.pod(pod.id).network)
    check(
        guest.network.interface == recorded.guest_interface(),
        "N8",
        f"the guest got interface {guest.network.interface}, the attachment says "
        f"{recorded.guest_interface()}",
    )
    engine.runtime.remove_pod(pod.id)


def test_a_failed_start_releases_the_network(engine):
    calls = _spy(engine.runtime.network)
    engine.host.start_error = "the kit fails this VM's start"
    with pytest.raises(HyperError) as failed:
        try:
            engine.runtime.run_pod(engine.pod("sleep", "60", labels=engine.labels))
        except HyperError as e:
            _skip_without_root(engine, e)
            raise
    assert "the kit fails" in str(failed.value)
    attached = [pod for op, pod in calls if op == "attach"]
    detached = [pod for op, pod in calls if op == "detach"]
    check(
        attached and set(attached) <= set(detached),
        "N8",
        f"attach() for {attached}, but detach() only for {detached}",
    )
    check(engine.runtime.store.pods() == [], "E1", "the failed pod is still recorded")


def test_a_vetoed_start_attaches_nothing(engine):
    calls = _spy(engine.runtime.network)

    class Veto:
        @hookimpl
        def pod_pre_start(self, pod):
            raise UserError("the kit vetoes this start")

    engine.runtime.hooks.register(Veto(), "kit-veto")
    with pytest.raises(UserError, match="the kit vetoes"):
        engine.runtime.run_pod(engine.pod("sleep", "60", labels=engine.labels))
    check(calls == [], "E1", f"a vetoed start still called the network driver: {calls}")
    check(engine.host.running() == [], "E1", "a vetoed start left a VM running")


def _spy(network: Network) -> list[tuple[str, str]]:
    """Record the pods the runtime attaches and detaches (the driver still does the work)."""
    calls: list[tuple[str, str]] = []
    for op in ("attach", "detach"):
        real = getattr(network, op)

        def spy(pod_id, *args, _op=op, _real=real):
            calls.append((_op, pod_id))
            return _real(pod_id, *args)

        setattr(network, op, spy)
    return calls

"""The contract of a hypervisor driver (rules H1-H11, D1): real VMs booting the real guest
image (or the one `[guest]` of --hc-config names), driven as the runtime drives them.

The checks that need a VM share one (booted once per module) and end it last;
`reap` and a failed start get VMs of their own. A driver whose check() says it
cannot run here has only its declarations checked.
"""

from __future__ import annotations

import contextlib
import json
import socket
import tempfile
import threading
from pathlib import Path

import pytest

from ...agent.client import AgentClient
from ...drivers import Cap, Hypervisor, NetworkAttachment, PortForward, Share, VMSpec
from ...errors import HyperError, UserError
from ..rules import broken, check
from .common import check_declarations, check_settings, one_line

STOP_TIMEOUT = 10.0
WATCH_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def config(hc_make_config):
    return hc_make_config()


@pytest.fixture(scope="module")
def driver(hc_plugin, config) -> Hypervisor:
    return hc_plugin(config)


@pytest.fixture(scope="module")
def usable(driver) -> Hypervisor:
    """The driver, if it can run here (H1 says how it must tell when it cannot)."""
    try:
        driver.check()
    except UserError as e:
        one_line("H1", e)
        pytest.skip(f"{driver.name} cannot run here: {e}")
    except Exception as e:  # noqa: BLE001
        broken("H1", f"check() raised {type(e).__name__}: {e}")
    return driver


@pytest.fixture(scope="module")
def make_spec(config, hc_root):
    from ...guest.image import ensure_image

    image = ensure_image(config)
    layers = hc_root / "layers"
    layers.mkdir(exist_ok=True)

    def make(name: str, **changes) -> VMSpec:
        run_dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=config.run_root))
        spec = VMSpec(
            pod_id=f"kit-{name}",
            vm_name=f"vm-kit-{name}",
            vcpus=1,
            memory_mb=128,
            kernel=image.kernel,
            initrd=image.initrd,
            kernel_args=list(image.kernel_args),
            run_dir=run_dir,
            console_log=run_dir.parent / f"{run_dir.name}.console.log",
            shares=[Share("hc_layers", layers)],
        )
        for key, value in changes.items():
            setattr(spec, key, value)
        return spec

    return make


def stored(handle) -> dict:
    """The handle as the store gives it back to a restarted daemon."""
    try:
        return json.loads(json.dumps(handle))
    except (TypeError, ValueError) as e:
        broken("H2", f"the handle {handle!r} is not JSON: {e}")


def agent(driver: Hypervisor, handle, timeout: float) -> AgentClient:
    client = AgentClient(
        driver.connect_agent(handle, timeout),
        on_event=lambda e: None,
        on_output=lambda key, fd, data: None,
    )
    client.wait_ready(timeout)
    return client


def end(driver: Hypervisor, handle) -> None:
    """Make sure a VM of the kit's is gone; the checks of stop and cleanup are elsewhere."""
    with contextlib.suppress(Exception):
        driver.stop(handle, timeout=0)
    with contextlib.suppress(Exception):
        driver.cleanup(handle)


class Booted:
    def __init__(self, spec: VMSpec, handle: dict, forward: PortForward | None) -> None:
        self.spec, self.handle, self.forward = spec, handle, forward
        self.ended = threading.Event()


@pytest.fixture(scope="module")
def booted(usable, make_spec, config):
    forward = None
    network = NetworkAttachment(kind="none")
    if Cap.USER_NETWORK in usable.capabilities:
        forward = PortForward("tcp", "127.0.0.1", free_port(), 80)
        network = NetworkAttachment(
            kind="user",
            mac="52:54:00:12:34:56",
            address="10.0.2.15/24",
            gateway="10.0.2.2",
            forwards=[forward],
        )
    spec = make_spec("booted", network=network)
    try:
        handle = usable.start(spec)
    except HyperError as e:
        broken("H2", f"start() failed: {e}")
    vm = Booted(spec, handle, forward)
    try:
        with agent(usable, handle, config.guest.boot_timeout) as client:
            client.ping()
        yield vm
    finally:
        end(usable, handle)


def test_declarations(hc_plugin):
    check_declarations(hc_plugin, Hypervisor)


def test_settings(hc_plugin, hc_make_config):
    check_settings(hc_plugin, hc_make_config())


def test_start_gives_a_handle_the_store_keeps(usable, booted):
    check(
        usable.is_running(stored(booted.handle)), "H2", "is_running() of the stored handle is False"
    )


def test_the_agent_answers_each_new_connection(usable, booted, config):
    for _ in range(2):
        with agent(usable, booted.handle, config.guest.boot_timeout) as client:
            check(client.state().get("containers") == {}, "H2", "the new guest has containers")


def test_a_restarted_daemon_adopts_the_vm(hc_plugin, config, booted):
    restarted = hc_plugin(config)
    handle = stored(booted.handle)
    check(restarted.is_running(handle), "H6", "a new driver instance sees the VM as not running")
    try:
        with agent(restarted, handle, config.guest.boot_timeout) as client:
            client.ping()
    except HyperError as e:
        broken("H6", f"a new driver instance cannot reach the agent: {e}")


def test_pause_and_resume_as_declared(usable, booted, config):
    if Cap.PAUSE not in usable.capabilities:
        for verb in (usable.pause, usable.resume):
            with pytest.raises(UserError):
                verb(booted.handle)
        return
    try:
        usable.pause(booted.handle)
        usable.resume(booted.handle)
    except HyperError as e:
        broken("H9", f"declares pause but: {e}")
    with agent(usable, booted.handle, config.guest.boot_timeout) as client:
        client.ping()


def test_host_forwards_as_declared(usable, booted):
    extra = PortForward("tcp", "127.0.0.1", free_port(), 8080)
    if Cap.HOST_FORWARDS not in usable.capabilities:
        try:
            usable.add_forward(booted.handle, extra)
        except UserError as e:
            one_line("H10", e)
            return
        broken("H10", "add_forward() worked without the host-forwards capability")
    check(booted.forward is not None, "H10", "host-forwards declared without user-network")
    try:
        usable.add_forward(booted.handle, extra)
        usable.remove_forward(booted.handle, extra)
    except HyperError as e:
        broken("H10", f"declares host-forwards but: {e}")
    with pytest.raises(UserError):
        usable.remove_forward(booted.handle, extra)


def test_stop_then_cleanup(usable, booted, config):
    """Last of the shared VM's checks: it ends here."""
    usable.watch(booted.handle, booted.ended.set)
    with agent(usable, booted.handle, config.guest.boot_timeout) as client:
        try:
            client.destroy_pod()
        except HyperError:
            pass  # the guest may power off before its answer leaves
    usable.stop(booted.handle, timeout=STOP_TIMEOUT)
    check(not usable.is_running(booted.handle), "H4", "is_running() after stop() is True")
    try:
        usable.stop(booted.handle, timeout=STOP_TIMEOUT)
    except Exception as e:  # noqa: BLE001
        broken("H4", f"stop() of a stopped VM raised {type(e).__name__}: {e}")
    check(
        booted.ended.wait(WATCH_TIMEOUT),
        "H8",
        f"watch() did not call back within {WATCH_TIMEOUT:g} s of the VM's end",
    )
    try:
        usable.connect_agent(booted.handle, 1.0).close()
    except HyperError:
        pass
    except Exception as e:  # noqa: BLE001
        broken("H11", f"connect_agent() raised {type(e).__name__}: {e}")
    else:
        broken("H11", "connect_agent() of a stopped VM gave a connection")
    for attempt in ("cleanup()", "a second cleanup()"):
        try:
            usable.cleanup(booted.handle)
        except Exception as e:  # noqa: BLE001
            broken("H5", f"{attempt} raised {type(e).__name__}: {e}")
    left = sorted(p.name for p in booted.spec.run_dir.glob("*"))
    check(not left, "H5", f"cleanup() left {left} in the run directory")


def test_reap_ends_a_vm_known_only_by_its_run_dir(usable, hc_plugin, config, make_spec):
    spec = make_spec("reaped", network=NetworkAttachment(kind="none"))
    handle = usable.start(spec)
    try:
        hc_plugin(config).reap(spec.run_dir)  # a restarted daemon, without the handle
        check(not usable.is_running(handle), "H7", "the VM still runs after reap()")
    finally:
        end(usable, handle)


def test_a_failed_start_leaves_nothing(usable, make_spec):
    spec = make_spec(
        "failed", network=NetworkAttachment(kind="none"), kernel=Path("/nonexistent/kit-vmlinuz")
    )
    try:
        handle = usable.start(spec)
    except HyperError as e:
        one_line("H3", e)
    except Exception as e:  # noqa: BLE001
        broken("H3", f"start() raised {type(e).__name__}: {e}")
    else:
        end(usable, handle)
        broken("H3", "start() with a missing kernel succeeded")
    left = sorted(p.name for p in spec.run_dir.glob("*"))
    check(not left, "H3", f"the failed start left {left} in the run directory")

"""An in-process hypervisor: VMs that boot in microseconds, each with a `FakeGuest` agent.

Its VMs live in a `FakeHost`, not in the driver, just as VMM processes outlive
the hyperd that started them: a second driver made on the same host (a
restarted daemon) adopts them from their handles, or finds them from the run
directory (`reap`). A test reaches a VM through `host.vm(pod_id)` to crash it,
fail its next start, or drive its guest's processes.
"""

from __future__ import annotations

import itertools
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..drivers import Cap, Hypervisor, PortForward, Share, VMHandle, VMSpec
from ..errors import DriverError, UserError
from .fakeguest import FakeGuest

if TYPE_CHECKING:
    from ..config import Config

MARKER = "fake-vm"  # in the run directory: the id of the VM started there


class FakeVM:
    def __init__(self, vm_id: str, spec: VMSpec) -> None:
        self.id = vm_id
        self.spec = spec
        self.guest = FakeGuest()
        self.running = True
        self.paused = False
        self.forwards: list[PortForward] = list(spec.network.forwards if spec.network else [])
        self.shares: list[Share] = list(spec.shares)
        self._watchers: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        threading.Thread(
            target=self._off_after_destroy, daemon=True, name=f"fake-vm-{vm_id}"
        ).start()

    def _off_after_destroy(self) -> None:
        self.guest.powered_off.wait()  # the agent answered destroy_pod: the guest powers off
        self.power_off()

    def watch(self, on_exit: Callable[[], None]) -> None:
        with self._lock:
            if self.running:
                self._watchers.append(on_exit)
                return
        on_exit()

    def power_off(self) -> None:
        """The VMM exits (whatever the guest was doing): its agent link ends."""
        with self._lock:
            if not self.running:
                return
            self.running = False
            watchers, self._watchers = self._watchers, []
        self.guest.hang_up()
        for on_exit in watchers:
            on_exit()

    crash = power_off  # what a test calls it when the VM dies under a pod


class FakeHost:
    """The machine the fake VMs run on; `start_error` makes the next start fail, and
    `on_boot(vm)` is called with each new VM (to script its guest before it answers)."""

    def __init__(self) -> None:
        self.vms: dict[str, FakeVM] = {}
        self.start_error: str | None = None
        self.on_boot: Callable[[FakeVM], None] | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def boot(self, spec: VMSpec) -> FakeVM:
        with self._lock:
            if self.start_error is not None:
                error, self.start_error = self.start_error, None
                raise DriverError(error)
            vm = FakeVM(f"fake-{next(self._ids)}", spec)
            self.vms[vm.id] = vm
        if self.on_boot is not None:
            self.on_boot(vm)
        return vm

    def vm(self, pod_id: str) -> FakeVM:
        """The newest VM started for `pod_id`."""
        for vm in reversed(list(self.vms.values())):
            if vm.spec.pod_id == pod_id:
                return vm
        raise LookupError(f"no fake VM was started for pod {pod_id}")

    def running(self) -> list[FakeVM]:
        return [vm for vm in self.vms.values() if vm.running]


HOST = FakeHost()  # the default host: every FakeHypervisor made without one shares it


class FakeHypervisor(Hypervisor):
    """Every capability a hypervisor may declare; `stops` records the timeouts asked for."""

    name = "fake"
    capabilities = frozenset(
        {
            Cap.PAUSE,
            Cap.USER_NETWORK,
            Cap.TAP_NETWORK,
            Cap.HOST_FORWARDS,
            Cap.NETNS_TAP,
            Cap.SHARE_9P,
        }
    )

    def __init__(self, config: Config, host: FakeHost | None = None) -> None:
        super().__init__(config)
        self.host = host or HOST
        self.stops: list[float] = []

    def check(self) -> None:
        """Nothing to find: the fake runs everywhere."""

    def start(self, spec: VMSpec) -> VMHandle:
        for name, path in (("kernel", spec.kernel), ("initrd", spec.initrd)):
            if not Path(path).is_file():
                raise UserError(f"guest {name} {path} is not a file")
        spec.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        vm = self.host.boot(spec)
        (spec.run_dir / MARKER).write_text(vm.id)
        network = spec.network.kind if spec.network else "none"
        return {"vm": vm.id, "run_dir": str(spec.run_dir), "network": network}

    def _vm(self, handle: VMHandle) -> FakeVM | None:
        return self.host.vms.get(str(handle.get("vm")))

    def _running(self, handle: VMHandle) -> FakeVM:
        vm = self._vm(handle)
        if vm is None or not vm.running:
            raise DriverError("the VM is not running")
        return vm

    def connect_agent(self, handle: VMHandle, timeout: float) -> socket.socket:
        vm = self._running(handle)
        try:
            return vm.guest.connect()
        except OSError as e:
            raise DriverError(f"agent: {e}") from None

    def is_running(self, handle: VMHandle) -> bool:
        vm = self._vm(handle)
        return vm is not None and vm.running

    def stop(self, handle: VMHandle, timeout: float) -> None:
        self.stops.append(timeout)
        vm = self._vm(handle)
        if vm is not None:
            vm.power_off()

    def cleanup(self, handle: VMHandle) -> None:
        self.reap(Path(handle["run_dir"]))

    def reap(self, run_dir: Path) -> None:
        marker = Path(run_dir) / MARKER
        try:
            vm = self.host.vms.get(marker.read_text())
        except OSError:
            return
        if vm is not None:
            vm.power_off()
        marker.unlink(missing_ok=True)

    def watch(self, handle: VMHandle, on_exit: Callable[[], None]) -> None:
        vm = self._vm(handle)
        if vm is None:
            on_exit()
        else:
            vm.watch(on_exit)

    def pause(self, handle: VMHandle) -> None:
        self._running(handle).paused = True

    def resume(self, handle: VMHandle) -> None:
        self._running(handle).paused = False

    def add_forward(self, handle: VMHandle, forward: PortForward) -> None:
        vm = self._user_network(handle)
        if any(
            f.host_port == forward.host_port and f.protocol == forward.protocol for f in vm.forwards
        ):
            raise UserError(f"cannot forward {forward}: the host port is taken")
        vm.forwards.append(forward)

    def remove_forward(self, handle: VMHandle, forward: PortForward) -> None:
        vm = self._user_network(handle)
        if forward not in vm.forwards:
            raise UserError(f"cannot remove forward {forward}: no such forward")
        vm.forwards.remove(forward)

    def add_share(self, handle: VMHandle, share: Share) -> None:
        self._running(handle).shares.append(share)

    def _user_network(self, handle: VMHandle) -> FakeVM:
        if handle.get("network") != "user":
            raise UserError("host port forwards need the VM's user-mode network")
        return self._running(handle)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "vms": len(self.host.running())}

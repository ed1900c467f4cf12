"""The Cloud Hypervisor driver: one `cloud-hypervisor` process per pod.

start() runs `cloud-hypervisor --api-socket path=...`, then creates and boots
the VM over the REST API; restore() starts it instead from a snapshot of a
template guest of its shape (snapshot.py). The guest agent is reached over
hybrid vsock on the socket named in the VM's vsock device. Shares become
virtio-fs devices (one virtiofsd each) where virtiofsd can run, read-only ext4
images otherwise.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypercontainer.drivers import Cap, Share, VMHandle, VMSpec
from hypercontainer.errors import DriverError, UserError
from hypercontainer.log import get_logger

from ..shape import Shape, vmm_version
from ..templates import TEMPLATE_MAC, Template, TemplatingHypervisor, maker_run_dir
from . import hybrid_vsock, snapshot
from .client import ApiUnreachable, Client
from .kvm import check_kvm
from .process import Process, log_tail
from .settings import CloudHypervisorSettings
from .shares import DISK, VIRTIOFS, ShareDevices, check_tags
from .virtiofs import Virtiofsd, find_virtiofsd
from .vmconfig import AGENT_VSOCK_PORT, net_config, template_net_config, vm_config

if TYPE_CHECKING:
    from hypercontainer.config import Config

API_START_TIMEOUT = 10.0
API_RETRY_INTERVAL = 0.02
SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes, one for the NUL


@dataclass(frozen=True)
class RunPaths:
    """The files of one VM in its run directory."""

    run_dir: Path

    @property
    def api(self) -> Path:
        return self.run_dir / "ch-api.sock"

    @property
    def vsock(self) -> Path:
        return self.run_dir / "vsock.sock"

    @property
    def hvc_log(self) -> Path:
        return self.run_dir / "hvc0.log"

    @property
    def vmm_log(self) -> Path:
        return self.run_dir / "vmm.log"

    @property
    def vmm_pid(self) -> Path:
        return self.run_dir / "vmm.pid"

    @property
    def snapshot(self) -> Path:
        """A clone's snapshot directory: the template's, with this VM's back-ends."""
        return self.run_dir / "snapshot"

    def recorded_vmm(self) -> Process | None:
        """The VMM named by the pid file, if one is readable."""
        try:
            return Process.from_record(json.loads(self.vmm_pid.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def check(self) -> None:
        for path in (self.api, self.vsock, self.run_dir / "fs-12345678901234567890.sock"):
            if len(os.fsencode(path)) > SOCKET_PATH_MAX:
                raise UserError(f"run directory {self.run_dir} is too long for unix sockets")

    def remove(self) -> None:
        for path in (
            self.api,
            Path(f"{self.api}.lock"),
            self.vsock,
            self.hvc_log,
            self.vmm_log,
            self.vmm_pid,
        ):
            path.unlink(missing_ok=True)
        # Host-side sockets the VMM made for guest-initiated vsock connections.
        for path in self.run_dir.glob(f"{self.vsock.name}_*"):
            path.unlink(missing_ok=True)
        shutil.rmtree(self.snapshot, ignore_errors=True)  # links: the template stays


class CloudHypervisor(TemplatingHypervisor):
    name = "cloud-hypervisor"
    Settings = CloudHypervisorSettings
    settings: CloudHypervisorSettings
    capabilities = frozenset({Cap.PAUSE, Cap.TAP_NETWORK})
    kvm_device = Path("/dev/kvm")

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self._virtiofsd_path = find_virtiofsd(self.settings.virtiofsd)
        if self._virtiofs_usable:
            self.capabilities = type(self).capabilities | {Cap.SHARE_VIRTIOFS}

    # -- what can run here ---------------------------------------------------

    @property
    def _virtiofs_usable(self) -> bool:
        # virtiofsd must create files with any owner: it needs root.
        return self._virtiofsd_path is not None and os.geteuid() == 0

    @cached_property
    def _virtiofsd(self) -> Virtiofsd | None:
        if not self._virtiofs_usable:
            return None
        assert self._virtiofsd_path is not None
        return Virtiofsd.probe(self._virtiofsd_path)

    def _binary(self) -> str:
        configured = self.settings.binary
        found = shutil.which(configured)
        if found is None:
            raise UserError(
                f"cloud-hypervisor binary {configured!r} not found: install Cloud Hypervisor "
                "or set binary in the [cloud-hypervisor] table of the configuration"
            )
        return found

    def check(self) -> None:
        self._binary()
        check_kvm(self.kvm_device)

    def describe(self) -> dict[str, Any]:
        binary = shutil.which(self.settings.binary)
        return {
            **super().describe(),
            "binary": binary,
            "virtiofsd": str(self._virtiofsd_path) if self._virtiofs_usable else None,
            "shares": VIRTIOFS if self._virtiofs_usable else DISK,
            "templates": self._templates_setting(),
        }

    def _templates_setting(self) -> str:
        if not self.settings.template:
            return "off (template in [cloud-hypervisor])"
        if not self._virtiofs_usable:
            return "off: shares are disk images, and templates need virtio-fs"
        return "on"

    # -- life of a VM --------------------------------------------------------

    def start(self, spec: VMSpec) -> VMHandle:
        binary = self._binary()
        paths, devices = self._checked(spec)
        handle = self._new_handle(spec, devices)
        try:
            config = self._vm_config(spec, paths, devices)
            with self._launched(binary, paths, handle) as client:
                client.vm_create(config)
                client.vm_boot()
        except BaseException:
            self.cleanup(handle)
            raise
        get_logger(pod_id=spec.pod_id).info(
            "cloud-hypervisor VM booted", pid=handle["vmm"]["pid"], shares=devices.mode
        )
        return handle

    def _checked(self, spec: VMSpec) -> tuple[RunPaths, ShareDevices]:
        """Refuse what cannot run, before anything does."""
        paths = RunPaths(spec.run_dir)
        paths.check()
        net_config(spec.network)  # refuses a network it cannot attach
        devices = ShareDevices(spec.run_dir, self._virtiofsd)
        devices.check(spec.shares)
        return paths, devices

    def _new_handle(self, spec: VMSpec, devices: ShareDevices) -> VMHandle:
        spec.run_dir.mkdir(parents=True, exist_ok=True)
        self.reap(spec.run_dir)  # leftovers of an earlier VM in this directory
        return {"pod_id": spec.pod_id, "run_dir": str(spec.run_dir), "shares": devices.mode}

    def _vm_config(self, spec: VMSpec, paths: RunPaths, devices: ShareDevices) -> dict[str, Any]:
        """The VmConfig of the spec, its shares served from now on."""
        prepared = [devices.prepare(share) for share in spec.shares]
        virtiofs = devices.mode == VIRTIOFS
        return vm_config(
            spec,
            paths.vsock,
            paths.hvc_log,
            fs=prepared if virtiofs else None,
            disks=None if virtiofs else prepared,
            shared_memory=virtiofs,
        )

    @contextmanager
    def _launched(self, binary: str, paths: RunPaths, handle: VMHandle) -> Iterator[Client]:
        """A new VMM, recorded in `handle` and its pid file, with its API answering."""
        vmm = Process.spawn([binary, "--api-socket", f"path={paths.api}"], paths.vmm_log)
        handle["vmm"] = vmm.record()
        paths.vmm_pid.write_text(json.dumps(vmm.record()))
        with Client(paths.api) as client:
            self._wait_for_api(client, vmm, paths)
            with _vmm_errors(vmm, paths):
                yield client

    def _wait_for_api(self, client: Client, vmm: Process, paths: RunPaths) -> None:
        # Nothing tells when the VMM listens: ask until it answers, it dies, or time runs out.
        deadline = time.monotonic() + API_START_TIMEOUT
        while True:
            try:
                client.vmm_ping()
                return
            except ApiUnreachable:
                pass
            if vmm.wait(API_RETRY_INTERVAL):  # sleeps, but wakes at once if the VMM dies
                raise DriverError(f"cloud-hypervisor exited at start: {log_tail(paths.vmm_log)}")
            if time.monotonic() > deadline:
                raise DriverError(
                    f"cloud-hypervisor API did not come up within {API_START_TIMEOUT:g}s"
                )

    # -- templates -------------------------------------------------------------

    def restore(self, spec: VMSpec) -> VMHandle | None:
        """The VM restored from a snapshot of its shape's template, made now if there is
        none. Only with virtio-fs: a guest that probed the template's disk images keeps
        their first blocks cached, and a clone's disks are other images."""
        if not self.settings.template or self._virtiofsd is None:
            return None
        binary = self._binary()
        paths, devices = self._checked(spec)
        shape = Shape.of(
            spec,
            self.name,
            binary,
            vmm_version(binary),
            "kvm",
            {"shares": VIRTIOFS},
            helpers=(str(self._virtiofsd.binary),),
        )
        template = self.template_store.usable(
            shape, lambda work: self._make_template(spec, shape, binary, work), snapshot.FILES
        )
        if template is None:
            return None
        handle = {**self._new_handle(spec, devices), "template": template.key}
        try:
            snapshot.make_clone(
                template.directory, paths.snapshot, self._vm_config(spec, paths, devices)
            )
            with self._launched(binary, paths, handle) as client:
                self._restore_clone(client, template, paths)
        except BaseException:
            self.cleanup(handle)
            raise
        self.template_store.hit(template)
        get_logger(pod_id=spec.pod_id).info(
            "cloud-hypervisor VM restored", pid=handle["vmm"]["pid"], template=template.key
        )
        return handle

    def _restore_clone(self, client: Client, template: Template, paths: RunPaths) -> None:
        try:
            client.vm_restore(snapshot.restore_config(paths.snapshot))
            client.vm_resume()
        except DriverError as e:  # the next pod of the shape makes a new template...
            if template.hits() == 0:  # ...unless this one never made a working clone
                self.template_store.give_up(template.key, f"its first clone failed: {e}")
            self.template_store.discard(template.key)
            raise

    def _make_template(self, spec: VMSpec, shape: Shape, binary: str, work: Path) -> None:
        """Boot a guest of this shape and snapshot it into `work` once its agent listens:
        nothing mounted, no pod anywhere in it. Its shares are served from an empty
        directory, its interface has no tap of ours."""
        placeholder = work / "empty"
        placeholder.mkdir()
        run_dir = maker_run_dir(self.config.run_root, self.name, shape.key)
        guest = dataclasses.replace(
            spec,
            pod_id=f"template-{shape.key}",
            vm_name=f"template-{shape.key[:12]}",
            run_dir=run_dir,
            console_log=work / "console.log",
            network=None,
            shares=[Share(share.tag, placeholder) for share in spec.shares],
        )
        paths = RunPaths(run_dir)
        paths.check()
        devices = ShareDevices(run_dir, self._virtiofsd)
        handle = self._new_handle(guest, devices)
        try:
            config = self._vm_config(guest, paths, devices)
            if spec.network and spec.network.kind != "none":
                config["net"] = [template_net_config(TEMPLATE_MAC)]
            with self._launched(binary, paths, handle) as client:
                client.vm_create(config)
                client.vm_boot()
                self._wait_for_agent(handle, paths)
                client.vm_pause()
                client.vm_snapshot(snapshot.url(work))
        finally:
            self.cleanup(handle)
            shutil.rmtree(run_dir, ignore_errors=True)

    def _wait_for_agent(self, handle: VMHandle, paths: RunPaths) -> None:
        """Return once the guest agent listens on its vsock port: the VMM then answers the
        hybrid vsock handshake. The connection is closed unused (the agent goes back to
        waiting, with no session begun), so no pod state exists in the snapshot."""
        timeout = self.config.guest.boot_timeout
        hybrid_vsock.connect(
            paths.vsock, AGENT_VSOCK_PORT, timeout, alive=_vmm(handle).alive
        ).close()

    def connect_agent(self, handle: VMHandle, timeout: float) -> socket.socket:
        vmm = _vmm(handle)
        return hybrid_vsock.connect(
            RunPaths(Path(handle["run_dir"])).vsock, AGENT_VSOCK_PORT, timeout, alive=vmm.alive
        )

    def is_running(self, handle: VMHandle) -> bool:
        return "vmm" in handle and _vmm(handle).alive()

    def watch(self, handle: VMHandle, on_exit: Callable[[], None]) -> None:
        vmm = _vmm(handle)

        def wait_for_exit() -> None:
            vmm.wait(None)
            on_exit()

        threading.Thread(target=wait_for_exit, name=f"ch-watch-{vmm.pid}", daemon=True).start()

    def stop(self, handle: VMHandle, timeout: float) -> None:
        if not self.is_running(handle):
            return
        vmm = _vmm(handle)
        log = get_logger(pod_id=handle.get("pod_id"))
        api = RunPaths(Path(handle["run_dir"])).api
        with Client(api, timeout=self.settings.stop_timeout) as client:
            if self._ask_guest_to_power_off(client) and vmm.wait(timeout):
                return  # the guest powered off; the VMM exits with its VM
            log.warning("guest did not power off in time: stopping the VM")
            for request in (client.vm_shutdown, client.vm_delete, client.vmm_shutdown):
                try:
                    request()
                except DriverError as e:
                    log.warning("cloud-hypervisor stop step failed", error=str(e))
                    if isinstance(e, ApiUnreachable):
                        break
        vmm.terminate(self.settings.stop_timeout)

    def _ask_guest_to_power_off(self, client: Client) -> bool:
        """Press the power button of a running VM; False if that cannot work now."""
        try:
            if client.vm_info()["state"] != "Running":  # a paused guest cannot answer
                return False
            client.vm_power_button()
        except DriverError:
            return False
        return True

    def cleanup(self, handle: VMHandle) -> None:
        if "vmm" in handle:
            _vmm(handle).terminate(self.settings.stop_timeout)
        self.reap(Path(handle["run_dir"]))

    def reap(self, run_dir: Path) -> None:
        """Kill the VMM recorded in `run_dir` (and its virtiofsd), remove their files."""
        grace = self.settings.stop_timeout
        vmm = RunPaths(run_dir).recorded_vmm()
        if vmm is not None:
            vmm.terminate(grace)
        ShareDevices(run_dir, None).release_all(grace)
        RunPaths(run_dir).remove()

    # -- while it runs -------------------------------------------------------

    def pause(self, handle: VMHandle) -> None:
        with self._client(handle) as client:
            client.vm_pause()

    def resume(self, handle: VMHandle) -> None:
        with self._client(handle) as client:
            client.vm_resume()

    def add_share(self, handle: VMHandle, share: Share) -> None:
        """Export one more directory to the running VM: virtio-fs or a hot-added disk."""
        check_tags([share])
        run_dir = Path(handle["run_dir"])
        virtiofsd = self._virtiofsd if handle["shares"] == VIRTIOFS else None
        if handle["shares"] == VIRTIOFS and virtiofsd is None:
            raise DriverError("this VM shares through virtio-fs, but virtiofsd is gone")
        devices = ShareDevices(run_dir, virtiofsd)
        devices.check([share])
        device = devices.prepare(share)
        try:
            with self._client(handle) as client:
                if devices.mode == VIRTIOFS:
                    client.vm_add_fs(device)
                else:
                    client.vm_add_disk(device)
        except BaseException:
            devices.release(share.tag)
            raise

    def _client(self, handle: VMHandle) -> Client:
        if not self.is_running(handle):
            raise DriverError("the cloud-hypervisor VMM of this pod is not running")
        return Client(RunPaths(Path(handle["run_dir"])).api)


def _vmm(handle: VMHandle) -> Process:
    return Process.from_record(handle["vmm"])


@contextmanager
def _vmm_errors(vmm: Process, paths: RunPaths) -> Iterator[None]:
    """Turns 'API unreachable' into the VMM's last words when the VMM died."""
    try:
        yield
    except ApiUnreachable as e:
        if vmm.alive():
            raise
        raise DriverError(f"cloud-hypervisor exited: {log_tail(paths.vmm_log)}") from e

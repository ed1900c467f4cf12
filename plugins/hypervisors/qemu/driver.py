"""The QEMU hypervisor driver: start, adopt, watch, pause, stop and clean up VMs.

A VM handle records the QEMU process (pid and start time) and the run
directory holding its sockets and pid file; that is all a restarted daemon
needs to adopt the VM.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hypercontainer import netns
from hypercontainer.diskspace import no_room_left
from hypercontainer.drivers import (
    Cap,
    NetworkAttachment,
    PortForward,
    Share,
    VMHandle,
    VMSpec,
)
from hypercontainer.errors import DriverError, NoSpace, UserError
from hypercontainer.log import get_logger

from ..shape import Shape, vmm_version
from ..templates import TEMPLATE_MAC, TemplatingHypervisor, maker_run_dir
from . import accel, cmdline, migration, qmp
from .cmdline import NETDEV, RunFiles
from .settings import QemuSettings
from .vmm import Vmm

RESTORE_TIMEOUT = 30.0  # loading a template's device state: well under a second
MEMORY, STATE = "memory", "state"  # what a template leaves: its RAM file, its device state
START_TIMEOUT = 60.0  # QEMU's own set-up, before the guest runs: seconds at most
QUIT_GRACE = 5.0  # after "quit", before SIGKILL


class QemuHypervisor(TemplatingHypervisor):
    name = "qemu"
    Settings = QemuSettings
    settings: QemuSettings
    capabilities = frozenset(
        {
            Cap.PAUSE,
            Cap.USER_NETWORK,
            Cap.TAP_NETWORK,
            Cap.NETNS_TAP,
            Cap.HOST_FORWARDS,
            Cap.SHARE_9P,
        }
    )

    @property
    def binary(self) -> str:
        return self.settings.binary

    # -- information -----------------------------------------------------------

    def check(self) -> None:
        if shutil.which(self.binary) is None:
            raise UserError(
                f"qemu binary {self.binary!r} not found (install qemu-system-x86 "
                "or set qemu.binary)"
            )

    def describe(self) -> dict[str, Any]:
        info = {
            **super().describe(),
            "binary": self.binary,
            "accelerator_setting": self.settings.accelerator,
        }
        if shutil.which(self.binary):
            info["version"] = vmm_version(self.binary)
        verdict = accel.cached_verdict()
        if self.settings.accelerator == "tcg":
            info["accelerator"] = "tcg"
        elif verdict is None:
            info["kvm"] = "not probed yet: the first VM start boots a test kernel with KVM"
        else:
            info["accelerator"] = "kvm" if verdict.usable else "tcg"
            info["kvm_usable"] = verdict.usable
            info["kvm"] = verdict.reason
        info["templates"] = "on" if self.settings.template else "off (template in [qemu])"
        return info

    # -- lifecycle -------------------------------------------------------------

    def start(self, spec: VMSpec) -> VMHandle:
        self._check_files(spec)
        accelerator = self._accelerator(spec)
        with _netns_tap(spec.network) as tap_fd:
            return self._start(spec, tap_fd, accelerator, cmdline.COLD)

    def _check_files(self, spec: VMSpec) -> None:
        self.check()
        for name, path in (("kernel", spec.kernel), ("initrd", spec.initrd)):
            if not Path(path).is_file():
                raise UserError(f"guest {name} {path} is not a file")
        cmdline.build(spec, self.binary, "tcg", tap_fd=0)  # refuse bad input before anything

    def _accelerator(self, spec: VMSpec) -> str:
        return accel.choose(
            self.settings.accelerator, self.binary, Path(spec.kernel), self.config.cache_root
        )

    def _start(
        self, spec: VMSpec, tap_fd: int | None, accelerator: str, boot: cmdline.Boot
    ) -> VMHandle:
        log = get_logger(pod_id=spec.pod_id, component="qemu")
        files = RunFiles(spec.run_dir)
        tcg_cache = (
            self.settings.clone_tcg_cache_mb if boot.mode == "clone" else self.settings.tcg_cache_mb
        )
        argv = cmdline.build(spec, self.binary, accelerator, tcg_cache, tap_fd=tap_fd, boot=boot)
        spec.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        spec.console_log.parent.mkdir(parents=True, exist_ok=True)
        if (running := Vmm.from_pidfile(files.pidfile, spec.run_dir)) and running.alive():
            raise DriverError(f"a qemu (pid {running.pid}) already runs in {spec.run_dir}")
        _remove(files)
        try:
            vmm = _launch(argv, files, tap_fd)
        except BaseException:
            self.reap(spec.run_dir)
            raise
        log.info(
            "vm started",
            pid=vmm.pid,
            accelerator=accelerator,
            boot=boot.mode,
            vcpus=spec.vcpus,
            memory_mb=spec.memory_mb,
        )
        return {
            "pid": vmm.pid,
            "started": vmm.started,
            "run_dir": str(spec.run_dir),
            "accelerator": accelerator,
            "network": spec.network.kind if spec.network else "none",
        }

    # -- templates ---------------------------------------------------------------

    def restore(self, spec: VMSpec) -> VMHandle | None:
        """The VM cloned from its shape's template, made now if there is none."""
        if not self.settings.template:
            return None
        self._check_files(spec)
        accelerator = self._accelerator(spec)
        shape = self._shape(spec, accelerator)
        template = self.template_store.usable(
            shape, lambda work: self._make_template(shape, spec, accelerator, work), (MEMORY, STATE)
        )
        if template is None:
            return None
        # The clone's devices are the template's, its back-ends its own; the guest
        # takes the pod's MAC when the pod starts.
        network = spec.network and dataclasses.replace(spec.network, mac=TEMPLATE_MAC)
        clone = dataclasses.replace(spec, network=network)
        with _netns_tap(spec.network) as tap_fd:
            handle = self._start(
                clone, tap_fd, accelerator, cmdline.Boot("clone", template.path(MEMORY))
            )
        try:
            migration.restore(
                RunFiles(spec.run_dir).qmp_socket, template.path(STATE), RESTORE_TIMEOUT
            )
        except BaseException:
            self.reap(spec.run_dir)
            self.template_store.discard(template.key)
            raise
        get_logger(pod_id=spec.pod_id, component="qemu").info("vm restored", template=template.key)
        self.template_store.hit(template)
        return {**handle, "template": template.key}

    def _shape(self, spec: VMSpec, accelerator: str) -> Shape:
        tcg_cache = self.settings.tcg_cache_mb if accelerator == "tcg" else None
        return Shape.of(
            spec,
            self.name,
            self.binary,
            vmm_version(self.binary),
            accelerator,
            {"tcg_cache_mb": tcg_cache},
        )

    def _make_template(self, shape: Shape, spec: VMSpec, accelerator: str, work: Path) -> None:
        """Boot a guest of this shape with its RAM on `work/memory` and save it once its
        agent waits for a host: nothing mounted over 9p, no pod anywhere in it."""
        placeholder = work / "empty"  # every share's back-end while the template boots
        placeholder.mkdir()
        network = spec.network and NetworkAttachment(kind=spec.network.kind, mac=TEMPLATE_MAC)
        template = dataclasses.replace(
            spec,
            pod_id=f"template-{shape.key}",
            vm_name=f"template-{shape.key[:12]}",
            run_dir=maker_run_dir(self.config.run_root, self.name, shape.key),
            console_log=work / "console.log",
            shares=[Share(s.tag, placeholder) for s in spec.shares],
            network=network,
        )
        try:
            self._start(template, None, accelerator, cmdline.Boot("template", work / MEMORY))
            migration.save_when_agent_waits(
                RunFiles(template.run_dir).qmp_socket, work / STATE, self.config.guest.boot_timeout
            )
        finally:
            self.reap(template.run_dir)

    def connect_agent(self, handle: VMHandle, timeout: float) -> socket.socket:
        """A new connection to the agent's virtio-serial port (QEMU made it before start()
        returned). QEMU serves one connection at a time: close the last one first."""
        if not self.is_running(handle):
            raise DriverError("the VM is not running: no agent to connect to")
        path = RunFiles(Path(handle["run_dir"])).agent_socket
        stream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stream.settimeout(timeout)
        try:
            stream.connect(str(path))
        except OSError as e:
            stream.close()
            raise DriverError(f"agent socket {path}: {e.strerror or e}") from None
        stream.settimeout(None)
        return stream

    def is_running(self, handle: VMHandle) -> bool:
        vmm = _vmm(handle)
        return vmm is not None and vmm.alive()

    def stop(self, handle: VMHandle, timeout: float) -> None:
        vmm = _vmm(handle)
        if vmm is None or not vmm.alive():
            return
        monitor = RunFiles(vmm.run_dir).qmp_socket
        log = get_logger(component="qemu", pid=vmm.pid)
        # ACPI power button first; a guest that ignores it is quit, then killed.
        for command, grace in (("system_powerdown", timeout), ("quit", QUIT_GRACE)):
            try:
                qmp.execute(monitor, command, timeout=max(min(grace, 10.0), 1.0))
            except DriverError as e:
                log.debug("qmp command failed", command=command, error=str(e))
            if vmm.wait(grace):
                return
        log.warning("qemu ignored quit; killing it")
        vmm.kill()
        vmm.wait(QUIT_GRACE)

    def cleanup(self, handle: VMHandle) -> None:
        self.reap(Path(handle["run_dir"]))

    def reap(self, run_dir: Path) -> None:
        files = RunFiles(Path(run_dir))
        vmm = Vmm.from_pidfile(files.pidfile, files.run_dir)
        if vmm is not None and vmm.alive():
            vmm.kill()
            vmm.wait(QUIT_GRACE)
        _remove(files)
        try:
            files.run_dir.rmdir()  # only if nothing else (e.g. a console log) lives there
        except OSError:
            pass

    def watch(self, handle: VMHandle, on_exit: Callable[[], None]) -> None:
        vmm = _vmm(handle)

        def wait_then_report() -> None:
            if vmm is not None:
                vmm.wait(None)
            get_logger(component="qemu", pid=handle.get("pid")).info("vm exited")
            on_exit()

        threading.Thread(
            target=wait_then_report, name=f"qemu-watch-{handle.get('pid')}", daemon=True
        ).start()

    # -- while it runs ---------------------------------------------------------

    def status(self, handle: VMHandle) -> str:
        """QEMU's run state, e.g. "running", "paused", "shutdown"."""
        return str(self._qmp(handle, "query-status")["status"])

    def pause(self, handle: VMHandle) -> None:
        self._qmp(handle, "stop")

    def resume(self, handle: VMHandle) -> None:
        self._qmp(handle, "cont")

    def add_forward(self, handle: VMHandle, forward: PortForward) -> None:
        rule = cmdline.hostfwd(forward)
        output = self._hmp(handle, f"hostfwd_add {NETDEV} {rule}")
        if output:  # HMP reports failure as text, e.g. the host port is taken
            raise UserError(f"cannot forward {forward}: {output}")

    def remove_forward(self, handle: VMHandle, forward: PortForward) -> None:
        rule = cmdline.hostfwd(forward).rsplit("-", 1)[0]  # tcp:HOSTIP:HOSTPORT
        output = self._hmp(handle, f"hostfwd_remove {NETDEV} {rule}")
        if "removed" not in output:
            raise UserError(f"cannot remove forward {forward}: {output or 'no answer'}")

    def _qmp(self, handle: VMHandle, command: str) -> Any:
        if not self.is_running(handle):
            raise DriverError("the VM is not running")
        return qmp.execute(RunFiles(Path(handle["run_dir"])).qmp_socket, command)

    def _hmp(self, handle: VMHandle, command_line: str) -> str:
        if handle.get("network") != "user":
            raise UserError("host port forwards need the VM's user-mode network")
        if not self.is_running(handle):
            raise DriverError("the VM is not running")
        return qmp.human(RunFiles(Path(handle["run_dir"])).qmp_socket, command_line)


def _vmm(handle: VMHandle) -> Vmm | None:
    try:
        return Vmm(int(handle["pid"]), int(handle["started"]), Path(handle["run_dir"]))
    except (KeyError, TypeError, ValueError):
        return None


@contextlib.contextmanager
def _netns_tap(network: NetworkAttachment | None) -> Iterator[int | None]:
    """The open tap of an attachment in another network namespace (None for any other),
    held until QEMU has inherited its copy."""
    if network is None or network.kind != "tap" or not network.netns or not network.tap:
        yield None
        return
    fd = netns.open_tap(network.netns, network.tap)
    try:
        yield fd
    finally:
        os.close(fd)


def _launch(argv: list[str], files: RunFiles, tap_fd: int | None = None) -> Vmm:
    """Run QEMU; it returns (daemonizing) once the VM is set up, or fails saying why."""
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=START_TIMEOUT,
            start_new_session=True,
            check=False,
            pass_fds=() if tap_fd is None else (tap_fd,),
        )
    except subprocess.TimeoutExpired:
        raise DriverError(f"qemu did not finish setting up the VM in {START_TIMEOUT:g} s") from None
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines() or ["no error output"]
        error = f"qemu failed to start the VM: {lines[-1]}"
        if no_room_left(files.run_dir):  # QEMU does not say why it could not write its files
            raise NoSpace(f"no space left on hyperd's run root ({files.run_dir.parent}): {error}")
        raise DriverError(error)
    vmm = Vmm.from_pidfile(files.pidfile, files.run_dir)
    if vmm is None or not vmm.alive():
        raise DriverError("qemu exited right after setting up the VM")
    return vmm


def _remove(files: RunFiles) -> None:
    for path in files.all():
        path.unlink(missing_ok=True)

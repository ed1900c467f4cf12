"""The lifecycle engine: pods (their VMs) and the containers inside them.

Every operation on one pod is serialised by that pod's lock; every state
change is one store transaction. A pod that fails to boot leaves no VM, no
socket and no network allocation behind. Containers live in containers.py, the live
link to a pod's guest in pod_session.py: parts this module composes, which never
import it.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import drivers, events, names, netjoin, netns
from . import spec as podspec
from .admission import Admission
from .config import Config
from .container_config import LAYERS_TAG, check_runnable, volume_shares
from .containers import Containers
from .drivers import NetworkAttachment, PortForward, Share, VMHandle, VMSpec
from .errors import Conflict, HyperError, UserError
from .hooks import Hooks
from .log import get_logger
from .model import ContainerState, Pod, PodState, now
from .pod_files import PodFiles
from .pod_locks import PodLocks
from .pod_session import PodSession, SessionCallbacks
from .podshare import ShareError
from .store import Store
from .subscribers import Subscribers

if TYPE_CHECKING:
    from .guest.image import GuestImage

log = get_logger()

RUNNING_STATES = (PodState.RUNNING, PodState.PAUSED)
ENTROPY_BYTES = 64  # host randomness mixed into every guest's pool at pod start
RESTORED_AGENT_TIMEOUT = 20.0  # a restored guest's agent answers in ~0.1 s, even under TCG
ADOPTED_AGENT_TIMEOUT = 20.0  # so does a running one's, when a new hyperd connects


class Runtime:
    """The engine: pods and their VMs. It is given its parts (the drivers, the hook
    manager; `load()` makes them as the configuration names them) and composes the
    containers' part, which talks back only through the callbacks it is handed."""

    def __init__(
        self,
        config: Config,
        *,
        hypervisor: drivers.Hypervisor,
        images: drivers.Images,
        network: drivers.Network,
        hooks: Hooks,
    ) -> None:
        self.config = config
        make_roots(config)
        self.store = Store(config.database_path)
        self.hooks = hooks
        self.events = events.Events()  # a built-in hook plugin, blocked like any other
        self.hooks.register(self.events, events.NAME)
        self.hypervisor, self.images, self.network = hypervisor, images, network
        drivers.check_combination(self.hypervisor, self.network)
        self.subscribers = Subscribers()
        self.admission = Admission(config.admission)
        self.sessions: dict[str, PodSession] = {}
        self.files = PodFiles(config)
        self.lock = PodLocks()
        self.containers = Containers(
            store=self.store,
            images=images,
            hooks=hooks,
            subscribers=self.subscribers,
            files=self.files,
            lock=self.lock,
            sessions=self.sessions,
            stop_grace=config.guest.boot_timeout,
            end_pod=self._end_pod,
        )
        self._callbacks = SessionCallbacks(
            output=self.containers.output,
            container_exited=self.containers.exited,
            exec_exited=self.containers.exec_exited,
            vm_lost=self.vm_lost,
            pod_of=self.containers.pod_of,
        )
        self._guest_image: GuestImage | None = None
        self._guest_lock = threading.Lock()

    @property
    def transfers_dir(self) -> Path:
        """Where image archives sent to or from hyperd are staged (made by adopt())."""
        return self.files.transfers_dir

    def guest_image(self) -> GuestImage:
        with self._guest_lock:
            image = self._guest_image
            # Found again if its files went (another build of the cache pruned them).
            if image is None or not (image.kernel.is_file() and image.initrd.is_file()):
                from .guest.image import ensure_image

                image = self._guest_image = ensure_image(self.config)
            return image

    # -- pods ---------------------------------------------------------------

    def create_pod(
        self,
        spec: podspec.PodSpec,
        stdin_open: bool = False,
        transient: bool = False,
        netns_path: str | None = None,
    ) -> Pod:
        """Record a pod and its containers (pending); nothing boots yet.

        A transient pod (what `run` creates) is removed if its first start fails,
        even when hyperd dies in the middle of it. A pod given `netns_path` joins that
        network namespace (core/netjoin.py) instead of the network driver's.
        """
        self.hooks.pod_pre_create(spec)
        if transient:  # started at once: refused before anything is made if it cannot be
            self.admission.check(None, spec.resource.memory, self.store.pods(), self._memory)
        check_runnable(spec)  # refuse a missing host directory now, not at boot
        if netns_path is not None:
            self._check_netns(spec, netns_path)
        for container in spec.containers:
            self.containers.check_host_paths(container)
        images = {c.image: self.containers.image_for(c.image) for c in spec.containers if c.image}
        first_image = spec.containers[0].origin if spec.containers else "pod"
        pod_id = spec.id or names.numbered(names.image_base(first_image))
        pod = Pod(
            id=pod_id,
            name=pod_id,
            vm_name=names.vm_name(),
            spec=podspec.normalised(spec),
            transient=transient,
            netns=netns_path,
        )
        pod.spec["id"] = pod_id
        self.store.add_pod(pod)
        try:
            for container in spec.containers:
                name = container.name or (
                    pod_id
                    if len(spec.containers) == 1
                    else names.numbered(names.image_base(container.origin))
                )
                image_id = images[container.image].id if container.image else ""
                self.containers.record(pod, container, name, image_id, stdin_open)
        except BaseException:
            self.store.remove_pod(pod.id)
            raise
        log.info("pod created", pod_id=pod.id)
        self.hooks.pod_post_create(pod)
        return pod

    def run_pod(
        self, spec: podspec.PodSpec, stdin_open: bool = False, netns_path: str | None = None
    ) -> Pod:
        """Create and start; on failure nothing of the pod remains."""
        pod = self.create_pod(spec, stdin_open=stdin_open, transient=True, netns_path=netns_path)
        return self.start_pod(pod.id)

    def _check_netns(self, spec: podspec.PodSpec, path: str) -> None:
        if os.geteuid() != 0:
            raise UserError("joining a network namespace needs root")
        netns.check(path)
        if spec.portmappings:
            raise UserError(
                "portmappings: a pod joining a network namespace has its ports "
                "published by whoever made the namespace"
            )
        if missing := netjoin.REQUIRES - self.hypervisor.capabilities:
            raise UserError(
                f"hypervisor {self.hypervisor.name} cannot join a network "
                f"namespace: it lacks {', '.join(sorted(missing))}"
            )

    def start_pod(self, ref: str) -> Pod:
        pod = self.store.pod(ref)
        with self.lock(pod.id):
            pod = self.store.pod(pod.id)
            if pod.state not in (PodState.PENDING, PodState.SUCCEEDED, PodState.FAILED):
                raise Conflict(f"pod {pod.name} is already {pod.state}")
            try:
                self.hooks.pod_pre_start(pod)
                pod = self._admit(pod)
            except UserError:
                if pod.transient:  # a vetoed or refused `run` leaves no pod either
                    self.remove_pod(pod.id)
                raise
            try:
                self._boot(pod)
            except BaseException as e:
                self._teardown(pod.id)
                self.store.transition_pod(
                    pod.id, PodState.FAILED, error=str(e), finished=now(), vm=None, starting=False
                )
                self.containers.end_streams(pod.id, str(e))
                if pod.transient:
                    self.remove_pod(pod.id)
                raise
            pod = self.store.transition_pod(pod.id, PodState.RUNNING, started=now())
            log.info("pod running", pod_id=pod.id)
            self.hooks.pod_post_start(pod)
            self._start_pending_containers(pod)
            return self.store.pod(pod.id)

    def _admit(self, pod: Pod) -> Pod:
        """The pod counted as starting (reset first if it ran before), or refused with
        nothing changed if the host cannot hold it (core/admission.py)."""
        with self.admission.lock:  # until the pod counts as starting
            self.admission.check(pod.id, self._memory(pod), self.store.pods(), self._memory)
            if pod.state in (PodState.SUCCEEDED, PodState.FAILED):
                pod = self._reset(pod)
            return self.store.update_pod(pod.id, lambda p: setattr(p, "starting", True))

    @staticmethod
    def _memory(pod: Pod) -> int:
        """The pod's memory in MB, from its recorded (normalised, valid) spec."""
        return int((pod.spec.get("resource") or {}).get("memory", podspec.Resource().memory))

    def _start_pending_containers(self, pod: Pod) -> None:
        """The containers waiting for this start; then the start is complete."""
        for container in self.store.containers(pod.id):
            if container.state == ContainerState.PENDING:
                self.containers.start_in_pod(pod, container)

        def complete(record: Pod) -> None:
            record.starting = record.transient = False

        self.store.update_pod(pod.id, complete)

    def _reset(self, pod: Pod) -> Pod:
        for container in self.store.containers(pod.id):
            if container.state != ContainerState.PENDING:
                self.store.transition_container(container.id, ContainerState.PENDING)
        return self.store.transition_pod(pod.id, PodState.PENDING, error=None, finished=None)

    def _boot(self, pod: Pod) -> None:
        spec = podspec.PodSpec.model_validate(pod.spec)
        image = self.guest_image()
        if pod.netns:
            attachment = netjoin.join(pod.id, pod.netns)
        else:
            attachment = self.network.attach(pod.id, self._forwards(spec))
        self.store.update_pod(pod.id, lambda p: setattr(p, "network", attachment.to_dict()))
        drivers.check_combination(self.hypervisor, self.network, attachment.requires)
        run_dir = self.files.run_dir(pod.id)
        run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        layers = self.images.layers_root()
        layers.mkdir(parents=True, exist_ok=True)  # empty in a store that has no image yet
        self.files.pod_dir(pod.id).mkdir(parents=True, exist_ok=True, mode=0o700)
        vm = VMSpec(
            pod_id=pod.id,
            vm_name=pod.vm_name,
            vcpus=spec.resource.vcpu,
            memory_mb=spec.resource.memory,
            kernel=image.kernel,
            initrd=image.initrd,
            kernel_args=list(image.kernel_args),
            run_dir=run_dir,
            console_log=self.files.pod_dir(pod.id) / "console.log",
            shares=[
                Share(LAYERS_TAG, layers, readonly=True),
                self.files.share(pod.id).share(),
                *volume_shares(spec),
            ],
            network=attachment,
        )
        session = self._restored(pod.id, vm) or self._booted(pod.id, vm)
        session.agent.start_pod(
            # What a clone of a template must not share with its siblings (a booted VM
            # gets it too): fresh entropy for its random pool, and the wall clock.
            entropy=os.urandom(ENTROPY_BYTES),
            clock_ns=time.time_ns(),
            hostname=spec.hostname or pod.name[:63],
            dns=spec.dns or attachment.dns,
            dns_search=spec.dns_search,
            dns_options=spec.dns_options,
            interface=attachment.guest_interface(),
            sysctl={},
        )

    @staticmethod
    def _forwards(spec: podspec.PodSpec) -> list[PortForward]:
        return [
            PortForward(m.protocol, m.host_ip or "", host, guest)
            for m in spec.portmappings
            for host, guest in zip(m.host_ports, m.container_ports, strict=True)
        ]

    def _booted(self, pod_id: str, vm: VMSpec) -> PodSession:
        handle = self.hypervisor.start(vm)
        self.store.update_pod(pod_id, lambda p: setattr(p, "vm", handle))
        return self._connect(pod_id, handle)

    def _restored(self, pod_id: str, vm: VMSpec) -> PodSession | None:
        """The pod's VM restored from its shape's template, its agent answering. None:
        boot it instead, because the shape has no template or this one failed (said
        once, and dropped by the driver, so that the next pod gets a new one)."""
        try:
            handle = self.hypervisor.restore(vm)
        except HyperError as e:
            log.warning(
                "restoring the VM from its template failed; booting it", pod_id=pod_id, error=str(e)
            )
            return None
        if handle is None:
            return None
        self.store.update_pod(pod_id, lambda p: setattr(p, "vm", handle))
        try:
            return self._connect(pod_id, handle, RESTORED_AGENT_TIMEOUT)
        except HyperError as e:
            log.warning(
                "the agent of the VM restored from a template did not answer; booting it",
                pod_id=pod_id,
                error=str(e),
            )
            self.hypervisor.discard_template(handle)
            self._drop_vm(pod_id)
            return None

    def _connect(
        self, pod_id: str, handle: dict[str, Any], timeout: float | None = None
    ) -> PodSession:
        session = PodSession(pod_id, handle, self.hypervisor, self._callbacks)
        self.sessions[pod_id] = session
        session.connect(timeout or self.config.guest.boot_timeout)
        log.info("agent answered", pod_id=pod_id)
        return session

    def _drop_vm(self, pod_id: str) -> None:
        """Close the pod's agent link and make sure its VM is gone; tolerate partial state."""
        session = self.sessions.pop(pod_id, None)
        if session:
            session.close()
        pod = self.store.pod(pod_id)
        if pod.vm:
            try:
                if self.hypervisor.is_running(pod.vm):
                    self.hypervisor.stop(pod.vm, timeout=0)
            finally:
                self.hypervisor.cleanup(pod.vm)
            self.store.update_pod(pod_id, lambda p: setattr(p, "vm", None))

    def _teardown(self, pod_id: str) -> None:
        """Make sure nothing of the pod's VM or network is left; tolerate partial state."""
        self._drop_vm(pod_id)
        pod = self.store.pod(pod_id)
        if pod.netns:  # also when a cut join left its tap unrecorded
            netjoin.leave(pod_id, pod.netns)
        elif pod.network:
            self.network.detach(pod_id, NetworkAttachment.from_dict(pod.network))
        if pod.network:
            self.store.update_pod(pod_id, lambda p: setattr(p, "network", None))
        shutil.rmtree(self.files.run_dir(pod_id), ignore_errors=True)

    def stop_pod(
        self, ref: str, timeout: float = 10.0, state: PodState = PodState.SUCCEEDED
    ) -> Pod:
        pod = self.store.pod(ref)
        with self.lock(pod.id):
            pod = self.store.pod(pod.id)
            if pod.state not in RUNNING_STATES:
                raise Conflict(f"pod {pod.name} is not running (it is {pod.state})")
            self.hooks.pod_pre_stop(pod)
            if pod.state == PodState.PAUSED:
                self.hypervisor.resume(vm_of(pod))
            pod = self.store.transition_pod(pod.id, PodState.STOPPING)
            session = self.sessions.get(pod.id)
            if session:
                session.stopping = True
            answering = self.containers.stop_all(pod, timeout)
            if session and answering:  # a silent guest is not asked again: the VMM ends it
                session.shutdown_guest()
            self.hypervisor.stop(vm_of(pod), timeout=self.hypervisor.settings.stop_timeout)
            pod = self._vm_ended(pod.id, state)
            log.info("pod stopped", pod_id=pod.id)
            self.hooks.pod_post_stop(pod)
            return pod

    def _vm_ended(self, pod_id: str, state: PodState, error: str | None = None) -> Pod:
        """The pod's VM is off (or going): containers still recorded running exited
        (their exits never came and never will), what the VM held is released, and
        the pod is recorded `state`."""
        gone = f"pod {pod_id} failed: {error}" if error else f"pod {pod_id} stopped"
        for container in self.store.containers(pod_id):
            if container.state == ContainerState.RUNNING:
                self.containers.exited(container.id, None)
            self.subscribers.end_execs(container.id, gone)
        self._teardown(pod_id)
        return self.store.transition_pod(pod_id, state, error=error, finished=now(), vm=None)

    def remove_pod(self, ref: str) -> None:
        """Stop the pod if it runs, then forget it and everything it owned."""
        pod = self.store.pod(ref)
        with self.lock(pod.id):
            pod = self.store.pod(pod.id)
            self.hooks.pod_pre_remove(pod)
            # Recorded before anything is undone: a hyperd killed from here on
            # finishes the removal when it starts again (see _adopt).
            self.store.update_pod(pod.id, lambda p: setattr(p, "removing", True))
            if pod.state in RUNNING_STATES:
                self.stop_pod(pod.id, timeout=0)
            self._forget(pod.id)
        self.lock.forget(pod.id)
        self.hooks.pod_post_remove(pod)

    def _forget(self, pod_id: str) -> None:
        """Release what the pod holds and delete its record, logs and directories."""
        self._teardown(pod_id)
        self.containers.end_streams(pod_id, f"pod {pod_id} was removed")
        for container in self.store.containers(pod_id):
            self.files.forget_log(container.id)
        self.store.remove_pod(pod_id)
        try:
            self.files.share(pod_id).remove()
        except ShareError as e:  # a mount left below: deleting would reach the host's files
            log.error("pod directory kept", pod_id=pod_id, error=str(e))
        else:
            shutil.rmtree(self.files.pod_dir(pod_id), ignore_errors=True)
        log.info("pod removed", pod_id=pod_id)

    def pause_pod(self, ref: str) -> Pod:
        pod = self.store.pod(ref)
        with self.lock(pod.id):
            pod = self.store.pod(pod.id)
            if pod.state != PodState.RUNNING:
                raise Conflict(f"pod {pod.name} is {pod.state}, only a running pod pauses")
            self._set_paused(pod.id, True)
            try:
                self.hypervisor.pause(vm_of(pod))
            except BaseException:
                self._set_paused(pod.id, False)
                raise
            return self.store.transition_pod(pod.id, PodState.PAUSED)

    def unpause_pod(self, ref: str) -> Pod:
        pod = self.store.pod(ref)
        with self.lock(pod.id):
            pod = self.store.pod(pod.id)
            if pod.state != PodState.PAUSED:
                raise Conflict(f"pod {pod.name} is {pod.state}, not paused")
            self.hypervisor.resume(vm_of(pod))
            self._set_paused(pod.id, False)
            return self.store.transition_pod(pod.id, PodState.RUNNING)

    def _set_paused(self, pod_id: str, paused: bool) -> None:
        """A paused guest answers nothing: its session must not take that for a dead one."""
        session = self.sessions.get(pod_id)
        if session:
            session.paused = paused

    def vm_lost(self, pod_id: str, reason: str) -> None:
        """The VM died under a running pod: the pod failed; its VM resources go."""
        with self.lock(pod_id):
            try:
                pod = self.store.pod(pod_id)
            except HyperError:
                return
            if pod.state not in RUNNING_STATES:
                return
            log.warning("pod failed", pod_id=pod_id, reason=reason)
            pod = self._vm_ended(pod_id, PodState.FAILED, error=reason)
        self.hooks.pod_post_stop(pod)

    # -- port mappings of a running pod ---------------------------------------

    def ports(self, ref: str) -> list[PortForward]:
        pod = self.store.pod(ref)
        if not pod.network or pod.netns:
            return []
        return self.network.forwards(pod.id, NetworkAttachment.from_dict(pod.network))

    def change_ports(self, ref: str, forwards: list[PortForward], add: bool) -> list[PortForward]:
        """Add (or remove) every mapping, or none: one that fails undoes the others."""
        pod = self.store.pod(ref)
        with self.lock(pod.id):
            pod = self.store.pod(pod.id)
            if pod.state not in RUNNING_STATES or not pod.network:
                raise Conflict(f"pod {pod.name} is not running")
            if pod.netns:
                raise UserError(
                    f"pod {pod.name} is on a network namespace it joined: its "
                    "ports are published by whoever made the namespace"
                )
            attachment = NetworkAttachment.from_dict(pod.network)
            done: list[PortForward] = []
            try:
                for forward in forwards:
                    done.append(self._change_port(pod, attachment, forward, add))
            except BaseException:
                for applied in reversed(done):
                    try:
                        self._change_port(pod, attachment, applied, not add)
                    except HyperError as e:
                        log.warning("port mapping not undone", pod_id=pod.id, error=str(e))
                raise
            finally:
                self.store.update_pod(pod.id, lambda p: setattr(p, "network", attachment.to_dict()))
            return done

    def _change_port(
        self, pod: Pod, attachment: NetworkAttachment, forward: PortForward, add: bool
    ) -> PortForward:
        if add:
            applied = self.network.add_forward(pod.id, attachment, forward) or forward
            if attachment.kind == "user":  # the VMM forwards; the driver keeps nothing
                self.hypervisor.add_forward(vm_of(pod), applied)
                attachment.forwards.append(applied)
        else:
            applied = self.network.remove_forward(pod.id, attachment, forward) or forward
            if attachment.kind == "user":
                self.hypervisor.remove_forward(vm_of(pod), applied)
                attachment.forwards.remove(applied)
        return applied

    # -- after a daemon restart -----------------------------------------------

    def adopt(self) -> None:
        """Re-attach to pods whose VMs outlived the daemon; clear what a crash left."""
        # Archives staged for a load or save that a killed daemon never finished.
        shutil.rmtree(self.transfers_dir, ignore_errors=True)
        self.transfers_dir.mkdir(mode=0o700)
        self.images.recover()
        self.hypervisor.recover()
        known = set()
        relink: list[Pod] = []
        for pod in self.store.pods():
            known.add(pod.id)
            try:
                if self._adopt(pod):
                    relink.append(pod)
            except Exception as e:  # noqa: BLE001 - one bad pod must not keep the daemon down
                self._not_adopted(pod.id, e)
        # Every guest at once: one that does not answer holds hyperd's start for its
        # timeout once, not once per pod.
        threads = [
            threading.Thread(target=self._relink, args=(pod,), name=f"adopt-{pod.id}")
            for pod in relink
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.network.recover({p.id for p in self.store.pods() if p.network and not p.netns})
        runs = self.config.run_root / "pods"
        for leftover in runs.iterdir() if runs.is_dir() else ():
            if leftover.name not in known:
                log.warning("removing leftover of an unknown pod", path=str(leftover))
                self.hypervisor.reap(leftover)
                shutil.rmtree(leftover, ignore_errors=True)

    def _adopt(self, pod: Pod) -> bool:
        """Settle what the last hyperd left of `pod`; True: its VM runs, its agent is to
        be linked up with again (_relink)."""
        if pod.removing:  # the daemon died in the middle of `rm`: finish it
            self.hypervisor.reap(self.files.run_dir(pod.id))
            self._forget(pod.id)
            self.hooks.pod_post_remove(pod)
            return False
        if pod.state == PodState.PENDING:
            booting = pod.starting or pod.vm or pod.network or self.files.run_dir(pod.id).exists()
            if booting or pod.transient:
                # The daemon died while booting this pod, or before the start of a `run`
                # (which creates, then starts): undo the boot entirely, and the pod too
                # if only that start made it (a cut `run`).
                self.hypervisor.reap(self.files.run_dir(pod.id))
                self._teardown(pod.id)
                if pod.transient:
                    self.remove_pod(pod.id)
                    return False

                def not_starting(record: Pod) -> None:
                    record.vm, record.starting = None, False

                self.store.update_pod(pod.id, not_starting)
            return False
        if pod.state not in (*RUNNING_STATES, PodState.STOPPING):
            return False
        if pod.vm and self.hypervisor.is_running(pod.vm):
            if pod.state == PodState.STOPPING:
                self.hypervisor.stop(pod.vm, timeout=0)
            else:
                network = NetworkAttachment.from_dict(pod.network) if pod.network else None
                if network and not pod.netns:  # a joined namespace is its maker's to keep
                    self.network.adopt(pod.id, network)
                return True
        self.hypervisor.reap(self.files.run_dir(pod.id))
        if pod.state == PodState.STOPPING:  # the daemon died while stopping it: finish that
            self._vm_ended(pod.id, PodState.SUCCEEDED)
        else:
            self.vm_lost(pod.id, "the VM was gone when hyperd restarted")
        return False

    def _relink(self, pod: Pod) -> None:
        """The agent link of a pod whose VM outlived the last hyperd (its own thread)."""
        try:
            running = [
                c.id for c in self.store.containers(pod.id) if c.state == ContainerState.RUNNING
            ]
            self._reconnect(pod, running)
        except Exception as e:  # noqa: BLE001 - one bad pod must not keep the daemon down
            self._not_adopted(pod.id, e)
            return
        log.info("pod adopted", pod_id=pod.id)
        if pod.starting:  # the start was cut before all its containers ran
            try:
                with self.lock(pod.id):
                    self._start_pending_containers(self.store.pod(pod.id))
            except Exception as e:  # noqa: BLE001 - the pod runs: its containers say the rest
                log.error("finishing the cut start failed", pod_id=pod.id, error=str(e))

    def _reconnect(self, pod: Pod, running: list[str]) -> None:
        """Link up again with the agent of a VM that outlived the last hyperd, and apply
        the exits of `running` it saw meanwhile. A running agent answers at once if it
        answers at all: a guest must not hold hyperd's start for a boot's time. A paused
        VM runs for as long as that takes."""
        handle = vm_of(pod)
        paused = pod.state == PodState.PAUSED
        if paused:
            self.hypervisor.resume(handle)
        try:
            session = self._connect(pod.id, handle, ADOPTED_AGENT_TIMEOUT)
            session.reconcile(running)
        finally:
            if paused:
                self.hypervisor.pause(handle)
        session.paused = paused

    def _not_adopted(self, pod_id: str, error: Exception) -> None:
        """A VM hyperd cannot talk to is of no use, and would run unseen: its pod fails."""
        log.error("adoption failed", pod_id=pod_id, error=str(error))
        try:
            self.vm_lost(pod_id, f"not adopted: {error}")
        except Exception as e:  # noqa: BLE001 - one bad pod must not keep the daemon down
            log.error("failing the pod that was not adopted failed", pod_id=pod_id, error=str(e))

    def _end_pod(self, pod_id: str, state: PodState) -> None:
        """Every container of the pod has ended for good: its VM stops, recorded `state`."""
        self.stop_pod(pod_id, timeout=0, state=state)

    def shutdown(self) -> None:
        """The daemon exits: drop agent links, leave every VM running."""
        for session in list(self.sessions.values()):
            session.close()
        self.sessions.clear()


def vm_of(pod: Pod) -> VMHandle:
    """The handle of a pod that runs (a pod in any running state has one)."""
    if pod.vm is None:
        raise Conflict(f"pod {pod.name} has no VM")
    return pod.vm


def make_roots(config: Config) -> None:
    """hyperd's state and run roots, private (before any driver makes a directory in them)."""
    for directory in (config.state_root, config.run_root):
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)


def load(config: Config) -> Runtime:
    """The runtime hyperd runs: hook plugins and drivers as the configuration names them."""
    make_roots(config)
    hooks = Hooks(config.disabled_hooks)
    return Runtime(
        config,
        hooks=hooks,
        hypervisor=drivers.load("hypervisor", config.hypervisor, config),
        images=drivers.load("images", config.images, config),
        network=drivers.load("network", config.network, config),
    )

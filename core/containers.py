"""Containers inside a running pod: create, start, stop, kill, exec, attach, logs.

A part of the runtime (runtime.py), whose pods these containers live in. A
container is materialised in the guest when it starts: every start (first
or again) gets a fresh root filesystem over the shared image layers.
"""

from __future__ import annotations

import os
import signal as signals
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from . import hostpaths, names
from . import spec as podspec
from .container_config import agent_config, host_binds
from .drivers import ResolvedImage
from .errors import (
    AgentError,
    AgentTimeout,
    Conflict,
    HyperError,
    NoSpace,
    NotFound,
    UserError,
)
from .guest.agent.protocol import KEY_SEPARATOR, process_key
from .log import get_logger
from .model import Container, ContainerState, Pod, PodState, container_final_state, now
from .mounts import MountError
from .podshare import ShareError
from .subscribers import Listener

if TYPE_CHECKING:
    from .drivers import Images
    from .hooks import Hooks
    from .pod_files import PodFiles
    from .pod_locks import PodLocks
    from .pod_session import PodSession
    from .store import Store
    from .subscribers import Subscribers

log = get_logger()

RESTART_BACKOFF_FIRST = 0.5  # seconds before the first restart; doubled each time
RESTART_BACKOFF_MAX = 30.0
EXIT_IN_FLIGHT = 5.0  # seconds an exit the guest has sent may take to be handled
EXIT_RECORD_RETRY = 5.0  # seconds between tries to record an exit on a full disk
MAX_SIGNAL = 64  # SIGRTMAX on Linux


def signal_number(name: str | int | None, default: int = signals.SIGTERM) -> int:
    if name in (None, ""):
        return default
    text = str(name).upper()
    if text.isascii() and text.isdigit():
        if 1 <= int(text) <= MAX_SIGNAL:
            return int(text)
        raise UserError(f"unknown signal {name}: signals are 1 to {MAX_SIGNAL}")
    try:
        return signals.Signals[text if text.startswith("SIG") else "SIG" + text].value
    except KeyError:
        raise UserError(f"unknown signal {name}") from None


class Containers:
    """The containers of every pod: a part the runtime composes.

    It reaches the pods only through what it is given: the store, the pods' locks
    and live agent sessions, and `end_pod(pod_id, state)`, called (from a thread of
    its own) when a pod's last container has ended for good.
    """

    def __init__(
        self,
        *,
        store: Store,
        images: Images,
        hooks: Hooks,
        subscribers: Subscribers,
        files: PodFiles,
        lock: PodLocks,
        sessions: Mapping[str, PodSession],
        stop_grace: float,
        end_pod: Callable[[str, PodState], None],
    ) -> None:
        self.store = store
        self.images = images
        self.hooks = hooks
        self.subscribers = subscribers
        self.files = files
        self.lock = lock
        self.sessions = sessions
        self.stop_grace = stop_grace  # how long a SIGKILLed process may take to be reported
        self.end_pod = end_pod
        self._exited = threading.Condition()  # notified whenever a container stops
        # Containers being started -> the exit (code,) that came before the start was
        # recorded (a process can end before its start's reply is handled), or None.
        self._early_exits: dict[str, tuple[int | None] | None] = {}
        self._restarts: dict[str, int] = {}  # restarts so far, for the back-off
        self._unrecorded_exits: set[str] = set()  # said once: tried again (a full disk)

    # -- images -----------------------------------------------------------

    def image_for(self, reference: str) -> ResolvedImage:
        """The local image, pulled first if it is not in the store."""
        try:
            return self.images.resolve(reference)
        except NotFound:
            log.info("pulling image", image=reference)
            return self.images.pull(reference)

    def images_in_use(self) -> set[str]:
        return {c.image_id for c in self.store.containers() if c.image_id}

    # -- records ----------------------------------------------------------

    def record(
        self, pod: Pod, spec: podspec.Container, name: str, image_id: str, stdin_open: bool = False
    ) -> Container:
        spec = spec.model_copy(update={"name": name})
        container = Container(
            id=names.container_id(),
            name=name,
            pod_id=pod.id,
            image=spec.image or "",
            image_id=image_id,
            spec=spec.model_dump(mode="json", by_alias=True, exclude_none=True),
            stdin_open=stdin_open,
        )
        return self.store.add_container(container)

    def spec_of(self, container: Container) -> podspec.Container:
        return podspec.Container.model_validate(container.spec)

    def create(
        self, pod_ref: str, spec: podspec.Container, start: bool = False, stdin_open: bool = False
    ) -> Container:
        pod = self.store.pod(pod_ref)
        with self.lock(pod.id):
            pod = self.store.pod(pod.id)
            if pod.state not in (PodState.PENDING, PodState.RUNNING):
                raise Conflict(
                    f"pod {pod.name} is {pod.state}: containers are added to a "
                    "pending or running pod"
                )
            name = spec.name or names.numbered(names.image_base(spec.origin))
            named = spec.model_copy(update={"name": name})
            pod_spec = podspec.PodSpec.model_validate(pod.spec).with_container(named)
            new_spec = pod_spec.containers[-1]
            if new_spec.volumes and pod.state == PodState.RUNNING:
                shared = {v.name for v in pod_spec.volumes if not v.is_empty}
                late = [r.volume for r in new_spec.volumes if r.volume in shared]
                if late and not self.pod_shares_include(pod, late):
                    raise UserError("host volumes of a running pod must be named in its pod file")
            self.check_host_paths(new_spec)
            self.hooks.container_pre_create(pod, new_spec)
            image_id = self.image_for(new_spec.image).id if new_spec.image else ""
            container = self.record(pod, new_spec, name, image_id, stdin_open)
            log.info("container created", pod_id=pod.id, container_id=container.id)
            self.hooks.container_post_create(container)
            if start and pod.state == PodState.RUNNING:
                self.start_in_pod(pod, container)
            return self.store.container(container.id)

    def check_host_paths(self, spec: podspec.Container) -> None:
        """A root directory or binds from the host: hyperd must be able to mount them
        below the pod share, and they must be paths a container may get."""
        if not spec.rootfs and not spec.binds:
            return
        if os.geteuid() != 0:
            raise UserError(
                "a container with a host root directory or binds needs hyperd to run as root"
            )
        protected = self.files.own_paths
        if spec.rootfs:
            if not os.path.isdir(hostpaths.check(spec.rootfs, "rootfs", protected)):
                raise UserError(f"rootfs: {spec.rootfs} is not a directory")
        for i, bind in enumerate(spec.binds):
            hostpaths.check(bind.source, f"binds[{i}].source", protected)

    def pod_shares_include(self, pod: Pod, volumes: list[str]) -> bool:
        """Whether the pod booted with these volumes (shares cannot be hot-added)."""
        booted = {v["name"] for v in pod.spec.get("volumes", [])}
        return set(volumes) <= booted

    # -- start ------------------------------------------------------------

    def start(self, ref: str) -> Container:
        container = self.store.container(ref)
        with self.lock(container.pod_id):
            container = self.store.container(container.id)
            pod = self.store.pod(container.pod_id)
            if container.state == ContainerState.RUNNING:
                raise Conflict(f"container {container.name} is already running")
            if pod.state != PodState.RUNNING:
                raise Conflict(f"pod {pod.name} is {pod.state}; start the pod first")
            self.start_in_pod(pod, container, strict=True)
            return self.store.container(container.id)

    def start_in_pod(self, pod: Pod, container: Container, strict: bool = False) -> None:
        """Create the container in the guest and run it. Errors mark it failed;
        with `strict` they are also raised to the caller."""
        session = self.sessions[pod.id]
        self.hooks.container_pre_start(container)
        spec = self.spec_of(container)
        try:
            image = None
            if spec.image:
                image = self.images.resolve(container.image_id or container.image)
            pod_spec = podspec.PodSpec.model_validate(pod.spec)
            binds = host_binds(pod_spec, spec)
            if spec.rootfs or binds:
                self.files.share(pod.id).attach(
                    container.id, spec.rootfs, [(b.source, b.read_only) for b in binds]
                )
            config = agent_config(
                container.id,
                spec,
                image,
                pod_spec,
                pod.spec.get("hostname") or pod.name[:63],
                stdin_open=container.stdin_open,
            )
            session.forget(container.id)
            session.agent.create_container(config)
            self.files.log(container).reopen()
            with self._exited:
                self._early_exits[container.id] = None
            session.agent.start_container(container.id)
        except (AgentError, UserError, ShareError, MountError) as e:
            with self._exited:
                self._early_exits.pop(container.id, None)
            log.warning("container failed to start", container_id=container.id, error=str(e))
            self.files.log(container).append("stderr", f"{e}\n".encode())
            self.store.transition_container(
                container.id, ContainerState.FAILED, exit_code=127, finished=now()
            )
            self.subscribers.exit(container.id, 127, str(e))
            self._maybe_finish_pod(self.store.container(container.id))  # it may be the last
            if strict:
                raise
            return
        with self._exited:
            container = self.store.transition_container(
                container.id,
                ContainerState.RUNNING,
                started=now(),
                finished=None,
                exit_code=None,
                user_stopped=False,
            )
            early = self._early_exits.pop(container.id, None)
        self.subscribers.started(container.id)
        log.info("container running", pod_id=pod.id, container_id=container.id)
        self.hooks.container_post_start(container)
        if early is not None:  # it ended before it was recorded running
            self.exited(container.id, early[0])

    # -- output and exits (called from agent sessions) --------------------

    def output(self, key: str, fd: str, data: bytes) -> None:
        """Process output from the guest: a container's main process is also logged."""
        if KEY_SEPARATOR not in key and data:
            log_file = self.files.open_log(key)
            if log_file is None:
                try:
                    log_file = self.files.log(self.store.container(key))
                except NotFound:
                    log_file = None
            if log_file is not None:
                log_file.append(fd, data)
        self.subscribers.output(key, fd, data)

    def pod_of(self, container_id: str) -> str | None:
        """The pod of the container whose id is exactly `container_id` (a guest names
        containers: never by a name or a prefix), or None if there is none."""
        try:
            container = self.store.container(container_id)
        except HyperError:
            return None
        return container.pod_id if container.id == container_id else None

    def exec_exited(self, key: str, code: int | None) -> None:
        """An exec'd process ended: whoever is attached to it learns its code."""
        self.subscribers.exit(key, code)

    def exited(self, container_id: str, code: int | None) -> None:
        """The container's process ended (code None: the VM died under it)."""
        with self._exited:
            try:
                container = self.store.container(container_id)
            except NotFound:
                self._unrecorded_exits.discard(container_id)
                return
            if container.state != ContainerState.RUNNING:
                self._unrecorded_exits.discard(container_id)
                if container_id in self._early_exits:  # its start has not been recorded yet
                    self._early_exits[container_id] = (code,)
                return
        state = container_final_state(code) if code is not None else ContainerState.FAILED
        try:
            container = self.store.transition_container(
                container_id, state, exit_code=code, finished=now()
            )
        except NoSpace as e:
            self._record_exit_later(container_id, code, str(e))
            return
        self._unrecorded_exits.discard(container_id)
        log.info("container exited", container_id=container_id, exit_code=code)
        self.files.log(container).end()
        self.subscribers.exit(container_id, code)
        with self._exited:
            self._exited.notify_all()
        self.hooks.container_post_stop(container, code)
        self._maybe_restart(container)

    def _record_exit_later(self, container_id: str, code: int | None, reason: str) -> None:
        """An exit the store had no space for: tried again until it is recorded (the
        container would otherwise stay `running` for good; nothing says when space is
        back), unless the container is gone or recorded otherwise meanwhile."""
        if container_id not in self._unrecorded_exits:
            log.warning(
                "container exit not recorded yet",
                container_id=container_id,
                exit_code=code,
                reason=reason,
                retry_every=EXIT_RECORD_RETRY,
            )
            self._unrecorded_exits.add(container_id)
        timer = threading.Timer(EXIT_RECORD_RETRY, self.exited, (container_id, code))
        timer.daemon = True
        timer.start()

    def _restart_wanted(self, container: Container) -> bool:
        policy = self.spec_of(container).restart_policy
        wanted = policy == "always" or (policy == "onFailure" and container.exit_code != 0)
        return wanted and not container.user_stopped and container.exit_code is not None

    def _maybe_restart(self, container: Container) -> None:
        if not self._restart_wanted(container):
            self._maybe_finish_pod(container)
            return
        restarts = self._restarts
        delay = min(RESTART_BACKOFF_MAX, RESTART_BACKOFF_FIRST * 2 ** restarts.get(container.id, 0))
        restarts[container.id] = restarts.get(container.id, 0) + 1

        def restart() -> None:
            try:
                current = self.store.container(container.id)
                if current.state != ContainerState.RUNNING and not current.user_stopped:
                    self.start(container.id)
            except Exception as e:  # noqa: BLE001 - the pod may be gone or stopping meanwhile
                log.info("restart skipped", container_id=container.id, reason=str(e))

        timer = threading.Timer(delay, restart)
        timer.daemon = True
        timer.start()

    def _maybe_finish_pod(self, container: Container) -> None:
        """A container ended by itself and will not restart: if it was the pod's last,
        the pod ends (in a thread: stopping waits for exits this caller delivers)."""
        if container.user_stopped or container.exit_code is None:
            return
        threading.Thread(
            target=self._finish_pod,
            args=(container.pod_id,),
            daemon=True,
            name=f"finish-{container.pod_id}",
        ).start()

    def _finish_pod(self, pod_id: str) -> None:
        """Every container exited, none restarts: the VM stops and the pod is
        succeeded if every exit code is 0, failed otherwise. Exit codes stay."""
        with self.lock(pod_id):
            try:
                pod = self.store.pod(pod_id)
            except NotFound:
                return
            containers = self.store.containers(pod_id)
            finished = (ContainerState.SUCCEEDED, ContainerState.FAILED)
            if (
                pod.state != PodState.RUNNING
                or not containers
                or any(c.state not in finished or self._restart_wanted(c) for c in containers)
            ):
                return
            ok = all(c.exit_code == 0 for c in containers)
            log.info("every container exited", pod_id=pod_id)
            try:
                self.end_pod(pod_id, PodState.SUCCEEDED if ok else PodState.FAILED)
            except HyperError as e:
                log.warning("pod did not stop after its containers", pod_id=pod_id, error=str(e))

    # -- stop, kill, remove -----------------------------------------------

    def wait(self, ref: str, timeout: float | None = None) -> Container:
        container = self.store.container(ref)
        with self._exited:
            self._exited.wait_for(
                lambda: self.store.container(container.id).state != ContainerState.RUNNING,
                timeout=timeout,
            )
        return self.store.container(container.id)

    def stop(self, ref: str, timeout: float = 10.0) -> Container:
        container = self.store.container(ref)
        with self.lock(container.pod_id):
            container = self.store.container(container.id)
            if container.state != ContainerState.RUNNING:
                raise Conflict(f"container {container.name} is not running")
            self.hooks.container_pre_stop(container)
            self._stop_one(container, timeout)
            return self.store.container(container.id)

    def _stop_one(self, container: Container, timeout: float) -> None:
        """Stop signal, then SIGKILL after `timeout` seconds."""
        self.store.update_container(container.id, lambda c: setattr(c, "user_stopped", True))
        session = self.sessions[container.pod_id]
        stop_signal = signal_number(self.spec_of(container).stop_signal)
        try:
            session.agent.signal(container.id, stop_signal)
            if self.wait(container.id, timeout).state == ContainerState.RUNNING:
                session.agent.signal(container.id, signals.SIGKILL)
                self.wait(container.id, self.stop_grace)
        except AgentError as e:
            # A guest that answers but refuses the signal has seen the process end; its
            # exit event may still be on its way. One that does not answer is not waited for.
            grace = 0 if isinstance(e, AgentTimeout) else EXIT_IN_FLIGHT
            if self.wait(container.id, grace).state == ContainerState.RUNNING:
                raise
            log.debug("container ended while stopping", error=str(e))

    def stop_all(self, pod: Pod, timeout: float) -> bool:
        """Stop every running container at once; False if the guest agent did not answer."""
        running = [c for c in self.store.containers(pod.id) if c.state == ContainerState.RUNNING]
        silent: list[Container] = []

        def stop(container: Container) -> None:
            try:
                self._stop_one(container, timeout)
            except AgentTimeout as e:
                silent.append(container)
                log.warning("container did not stop", container_id=container.id, error=str(e))
            except AgentError as e:
                log.warning("container did not stop", container_id=container.id, error=str(e))

        threads = [threading.Thread(target=stop, args=(c,)) for c in running]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return not silent

    def kill(
        self, ref: str, signal: str | int | None = None, exec_id: str | None = None
    ) -> Container:
        container = self.store.container(ref)
        if container.state != ContainerState.RUNNING:
            raise Conflict(f"container {container.name} is not running")
        number = signal_number(signal, default=signals.SIGKILL)
        if exec_id is not None:
            self.sessions[container.pod_id].agent.signal(container.id, number, exec_id)
            return container
        if number in (signals.SIGKILL, signals.SIGTERM, signals.SIGINT):
            self.store.update_container(container.id, lambda c: setattr(c, "user_stopped", True))
        self.sessions[container.pod_id].agent.signal(container.id, number)
        return container

    def signal_exec(self, container_id: str, exec_id: str, signum: int) -> None:
        """Signal an exec'd process; one that already ended (or its pod) is left alone."""
        try:
            self.kill(container_id, signum, exec_id)
        except (AgentError, Conflict, KeyError) as e:
            log.debug(
                "exec not signalled", container_id=container_id, exec_id=exec_id, error=str(e)
            )

    def remove(self, ref: str) -> None:
        container = self.store.container(ref)
        with self.lock(container.pod_id):
            container = self.store.container(container.id)
            self.hooks.container_pre_remove(container)
            if container.state == ContainerState.RUNNING:
                self._stop_one(container, timeout=0)
            session = self.sessions.get(container.pod_id)
            if session:
                session.forget(container.id)
            self.files.share(container.pod_id).detach(container.id)
            self.store.remove_container(container.id)
            self.files.forget_log(container.id, delete=True)
        self.hooks.container_post_remove(container)

    # -- streams ------------------------------------------------------------

    def attach(self, ref: str, listener: Listener) -> Container:
        container = self.store.container(ref)
        self.subscribers.add(container.id, listener)
        return container

    def detach(self, key: str, listener: Listener) -> None:
        self.subscribers.remove(key, listener)

    def exec(
        self,
        ref: str,
        args: list[str],
        tty: bool,
        listener: Listener,
        env: list[str] | None = None,
        cwd: str | None = None,
        user: str | None = None,
        exec_id: str | None = None,
    ) -> str:
        container = self.store.container(ref)
        if container.state != ContainerState.RUNNING:
            raise Conflict(f"container {container.name} is not running")
        if not args:
            raise UserError("exec needs a command")
        exec_id = exec_id or "exec-" + names.container_id()[:16]
        key = process_key(container.id, exec_id)
        self.subscribers.add(key, listener)
        try:
            self.sessions[container.pod_id].agent.exec(
                container.id, exec_id, args, env=env, cwd=cwd, user=user, terminal=tty, stdin=True
            )
        except BaseException:
            self.subscribers.remove(key, listener)
            raise
        listener.started()
        return exec_id

    def end_streams(self, pod_id: str, error: str) -> None:
        """Clients attached to the pod's containers learn at once that no process
        will come (the pod failed to start, or is gone): they must not wait for ever."""
        for container in self.store.containers(pod_id):
            self.subscribers.exit(container.id, None, error)

    def processes(self, ref: str) -> dict:
        """{"pid": main process, "execs": {exec id: pid}} as the guest numbers them."""
        container = self.store.container(ref)
        session = self.sessions.get(container.pod_id)
        if container.state != ContainerState.RUNNING or session is None:
            raise Conflict(f"container {container.name} is not running")
        state = session.agent.state()["containers"].get(container.id) or {}
        found = state.get("execs")
        execs = {
            eid: e.get("pid")
            for eid, e in (found if isinstance(found, dict) else {}).items()
            if isinstance(e, dict) and e.get("status") == "running"
        }
        return {"pid": state.get("pid"), "execs": execs}

    def session_for(self, key: str, container_id: str):
        container = self.store.container(container_id)
        session = self.sessions.get(container.pod_id)
        if session is None:
            raise Conflict(f"pod {container.pod_id} is not running")
        return session

    def logs(
        self,
        ref: str,
        tail: int | None = None,
        follow: bool = False,
        stop: threading.Event | None = None,
        since: datetime | None = None,
    ) -> Iterator[tuple[str, str, bytes]]:
        container = self.store.container(ref)
        log_file = self.files.log(container)
        if container.state != ContainerState.RUNNING:
            log_file.end()
        return log_file.read(tail=tail, follow=follow, stop=stop, since=since)

"""The containers of the pod: their root filesystems, bundles, processes and states.

A container's directory, under the state directory, holds its overlay (the
mounted `rootfs`, and `writable`: a bounded tmpfs with `upper` and `work`,
writable.py), its OCI bundle (`config.json` next to `rootfs`) and what crun
leaves there (its log, the pid file).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import threading

from . import bundle, mounts, safepath, users
from .crun import Crun
from .errors import Failure
from .log import log, timed
from .outbox import Outbox
from .pod import PodNetwork
from .process import EXITED, RUNNING, Process
from .protocol import process_key
from .reaper import Reaper
from .rootfs import Shares, mount_overlay
from .settings import Settings
from .stdio import Stdio
from .writable import WRITABLE, mount_writable

KILL_TIMEOUT = 30.0


class Container:
    def __init__(self, container_id: str, directory: str, spec: dict) -> None:
        self.id = container_id
        self.dir = directory
        self.rootfs = os.path.join(directory, "rootfs")
        self.spec = spec  # the validated create_container config
        self.process: Process | None = None
        self.execs: dict[str, Process] = {}
        self.volumes: list[tuple[str, str]] = []  # (destination, source directory)
        self.lock = threading.RLock()

    @property
    def status(self) -> str:
        return self.process.status if self.process else "created"

    def describe(self) -> dict:
        main = (
            self.process.describe()
            if self.process
            else {"status": "created", "code": None, "pid": None}
        )
        main["execs"] = {eid: proc.describe() for eid, proc in list(self.execs.items())}
        return main


class Runtime:
    def __init__(self, settings: Settings, outbox: Outbox, reaper: Reaper) -> None:
        self.settings = settings
        self.outbox = outbox
        self.reaper = reaper
        self.crun = Crun(settings)
        self.network = PodNetwork()
        self.containers: dict[str, Container] = {}
        self._lock = threading.Lock()
        self.shares = Shares(settings)
        self._stdin: dict[int, Stdio] = {}  # stdin stream -> its process's stdio
        self._stdio: dict[str, Stdio] = {}  # process key -> stdio, for resize
        os.makedirs(settings.path("containers"), exist_ok=True)

    # -- create -------------------------------------------------------------

    def get(self, container_id: str) -> Container:
        container = self.containers.get(container_id)
        if container is None:
            raise Failure(f"no container {container_id}")
        return container

    def create(self, spec: dict) -> None:
        cid = spec["id"]
        with self._lock:
            if cid in self.containers:
                raise Failure(f"container {cid} already exists")
            directory = self.settings.path("containers", cid)
            container = Container(cid, directory, spec)
            self.containers[cid] = container
        try:
            with container.lock:
                self._build(container)
        except BaseException:
            with self._lock:
                self.containers.pop(cid, None)
            self._dismantle(container)
            raise

    def _build(self, container: Container) -> None:
        spec = container.spec
        os.makedirs(container.dir)
        os.mkdir(container.rootfs)
        rootfs = container.rootfs
        hostname = spec["hostname"] or self.network.hostname
        if spec["rootfs"] is not None:
            # A host directory (containerd's snapshot): whoever made it owns its /etc.
            mounts.bind(self._share_source(spec["rootfs"]), rootfs)
        else:
            with timed("root filesystem mounted", container=container.id):
                mount_writable(container.dir)
                mount_overlay(container.dir, self.shares, spec["layers"], spec["opaque"])
            safepath.write_file(rootfs, "/etc/hostname", f"{hostname}\n".encode())
            safepath.write_file(rootfs, "/etc/hosts", self.network.hosts(hostname).encode())
            if self.network.resolv_conf:
                safepath.write_file(rootfs, "/etc/resolv.conf", self.network.resolv_conf.encode())
        oci_mounts = [self._volume(container, mount) for mount in spec["mounts"]]
        for item in spec["files"]:
            self._write_spec_file(rootfs, item)
        proc = spec["process"]
        user = users.resolve(rootfs, proc["user"], proc["additional_groups"])
        safepath.make_dirs(rootfs, proc["cwd"])
        env = bundle.process_env(proc["env"], user, hostname, proc["terminal"])
        process_spec = bundle.process(
            proc["args"], env, proc["cwd"], user, proc["terminal"], spec["rlimits"]
        )
        config = bundle.config(
            process_spec, hostname, spec["readonly_rootfs"], oci_mounts, spec["sysctl"]
        )
        with open(os.path.join(container.dir, "config.json"), "w") as file:
            json.dump(config, file, indent=1)

    def _share_source(self, share: dict) -> str:
        source = os.path.join(self.shares.get(share["tag"], readonly=False), share["path"])
        if not os.path.lexists(source):
            raise Failure(f"nothing at {share['path']} in share {share['tag']}")
        return source

    def _volume(self, container: Container, mount: dict) -> dict:
        if mount["type"] == "tmpfs":
            options = list(mount["options"]) + (["ro"] if mount["readonly"] else [])
            return {
                "destination": mount["destination"],
                "type": "tmpfs",
                "source": "tmpfs",
                "options": options or ["nosuid", "nodev"],
            }
        if mount["type"] == "share":
            source = self._share_source(mount)
        else:
            source = self.settings.path("volumes", mount["name"])
            os.makedirs(source, exist_ok=True)
        container.volumes.append((mount["destination"], source))
        return {
            "destination": mount["destination"],
            "type": "bind",
            "source": source,
            "options": ["rbind", "ro" if mount["readonly"] else "rw"],
        }

    def _write_spec_file(self, rootfs: str, item: dict) -> None:
        try:
            data = base64.b64decode(item["content_b64"], validate=True)
        except ValueError:
            raise Failure(f"file {item['path']}: content_b64 is not base64") from None
        owner = None
        if item["user"] or item["group"]:
            who = users.resolve(rootfs, f"{item['user'] or '0'}:{item['group'] or ''}".rstrip(":"))
            owner = (who.uid, who.gid)
        safepath.write_file(rootfs, item["path"], data, item["mode"], owner)

    # -- processes ----------------------------------------------------------

    def start(self, container_id: str) -> None:
        container = self.get(container_id)
        with container.lock:
            if container.process is not None:
                raise Failure(f"container {container_id} was already started")
            proc = container.spec["process"]
            process = self._launch(
                container,
                None,
                ["create", "--bundle", container.dir, container.id],
                container.dir,
                proc["terminal"],
                proc["stdin"],
                started=lambda: self.crun.start(container.id),
            )
            container.process = process

    def exec(
        self,
        container_id: str,
        exec_id: str,
        args: list[str],
        env: list[str],
        cwd: str | None,
        user: str | None,
        terminal: bool,
        stdin: bool,
    ) -> None:
        container = self.get(container_id)
        with container.lock:
            if container.status != RUNNING:
                raise Failure(f"container {container_id} is not running")
            if exec_id in container.execs:
                raise Failure(f"exec {exec_id} already exists in container {container_id}")
            proc = container.spec["process"]
            who = users.resolve(
                container.rootfs,
                proc["user"] if user is None else user,
                proc["additional_groups"] if user is None else [],
            )
            merged = _merge_env(proc["env"], env)
            hostname = container.spec["hostname"] or self.network.hostname
            spec = bundle.process(
                args,
                bundle.process_env(merged, who, hostname, terminal),
                cwd or proc["cwd"],
                who,
                terminal,
                container.spec["rlimits"],
            )
            directory = os.path.join(container.dir, "execs", exec_id)
            os.makedirs(directory)
            process_file = os.path.join(directory, "process.json")
            with open(process_file, "w") as file:
                json.dump(spec, file)
            try:
                container.execs[exec_id] = self._launch(
                    container,
                    exec_id,
                    ["exec", "--detach", "--process", process_file, container.id],
                    directory,
                    terminal,
                    stdin,
                )
            except BaseException:
                shutil.rmtree(directory, ignore_errors=True)
                raise

    def _launch(
        self,
        container: Container,
        exec_id: str | None,
        crun_args: list[str],
        workdir: str,
        terminal: bool,
        stdin: bool,
        started=None,
    ) -> Process:
        key = process_key(container.id, exec_id)
        stdio = Stdio(self.outbox, key, terminal, stdin)
        process = Process(key, container.id, exec_id, stdio)
        mark = self.reaper.mark()
        try:
            with timed(f"crun {crun_args[0]}", process=key):
                pid, master = self.crun.launch(crun_args, workdir, stdio.child_stdio(), terminal)
        except BaseException:
            stdio.abandon()
            if exec_id is None:
                with contextlib.suppress(Failure):
                    self.crun.delete(container.id)
            raise
        process.running(pid)
        stdio.attach(master)
        with self._lock:
            if stdio.stdin_stream is not None:
                self._stdin[stdio.stdin_stream] = stdio
            self._stdio[key] = stdio
        self.reaper.watch(pid, lambda code: process.on_exit(code, self._exited), since=mark)
        if started is not None:
            try:
                with timed("crun start", process=key):
                    started()
            except BaseException:
                with contextlib.suppress(Failure):
                    self.crun.kill(container.id, 9)
                raise
        return process

    def _exited(self, process: Process) -> None:
        with self._lock:
            self._stdio.pop(process.key, None)
            for stream, stdio in list(self._stdin.items()):
                if stdio is process.stdio:
                    del self._stdin[stream]
                    self.outbox.forget_stream(stream)
        self.outbox.event(
            {
                "event": "exit",
                "key": process.key,
                "container": process.container,
                "exec": process.exec_id,
                "code": process.code,
            }
        )

    def write_stdin(self, stream: int, data: bytes) -> None:
        with self._lock:
            stdio = self._stdin.get(stream)
        if stdio is not None:
            stdio.write(data)

    def stdio(self, key: str) -> Stdio:
        with self._lock:
            stdio = self._stdio.get(key)
        if stdio is None:
            raise Failure(f"no running process {key}")
        return stdio

    def signal(self, container_id: str, signum: int, exec_id: str | None) -> None:
        container = self.get(container_id)
        if exec_id is None:
            if container.status != RUNNING:
                raise Failure(f"container {container_id} is not running")
            self.crun.kill(container.id, signum)
            return
        process = container.execs.get(exec_id)
        if process is None or process.status != RUNNING or process.pid is None:
            raise Failure(f"exec {exec_id} of container {container_id} is not running")
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signum)

    # -- files --------------------------------------------------------------

    def _locate(self, container: Container, path: str) -> tuple[str, str]:
        """The directory and path to use for `path` as the container sees it (volumes too)."""
        if not path.startswith("/"):
            raise Failure(f"path {path[:80]!r} must be absolute")
        normal = os.path.normpath(path)
        for destination, source in sorted(container.volumes, key=lambda v: -len(v[0])):
            if normal == destination or normal.startswith(destination.rstrip("/") + "/"):
                return source, normal[len(destination) :] or "/"
        return container.rootfs, normal

    def write_file(
        self, container_id: str, path: str, data: bytes, mode: int, append: bool
    ) -> None:
        container = self.get(container_id)
        root, inner = self._locate(container, path)
        safepath.write_file(root, inner, data, mode, append=append)

    def read_file(self, container_id: str, path: str, offset: int, length: int) -> dict:
        container = self.get(container_id)
        root, inner = self._locate(container, path)
        data, eof = safepath.read_file(root, inner, offset, length)
        return {"data_b64": base64.b64encode(data).decode(), "eof": eof}

    # -- teardown -----------------------------------------------------------

    def remove(self, container_id: str) -> None:
        container = self.get(container_id)
        with container.lock:
            self._stop(container)
            with self._lock:
                self.containers.pop(container_id, None)
            self._dismantle(container)

    def _stop(self, container: Container) -> None:
        process = container.process
        if process is not None and process.status != EXITED:
            with contextlib.suppress(Failure):
                self.crun.kill(container.id, 9)
            if not process.exited.wait(KILL_TIMEOUT):
                raise Failure(f"container {container.id} did not die on SIGKILL")
        with contextlib.suppress(Failure):
            self.crun.delete(container.id)

    def _dismantle(self, container: Container) -> None:
        """Unmount and delete whatever exists of the container's directory."""
        mounts.unmount(container.rootfs)
        mounts.unmount(os.path.join(container.dir, WRITABLE))
        shutil.rmtree(container.dir, ignore_errors=True)

    def destroy(self) -> None:
        """Kill every container and release everything, for power-off."""
        errors = []
        for container_id in list(self.containers):
            try:
                self.remove(container_id)
            except Failure as exc:
                errors.append(str(exc))
                log("remove failed", container=container_id, error=str(exc))
        self.shares.unmount_all()
        os.sync()
        if errors:
            raise Failure("; ".join(errors))

    def state(self) -> dict:
        with self._lock:
            containers = list(self.containers.values())
        return {
            "containers": {c.id: c.describe() for c in containers},
            "hostname": self.network.hostname,
        }


def _merge_env(base: list[str], extra: list[str]) -> list[str]:
    """`base` with the variables of `extra` added or replaced."""
    names = {item.partition("=")[0] for item in extra}
    return [item for item in base if item.partition("=")[0] not in names] + extra

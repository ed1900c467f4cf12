"""The `containerd.task.v2.Task` service of one shim: one pod (one VM) and its containers.

The first task created is the pod's sandbox (a CRI sandbox, or a lone container as
`ctr run` makes): it creates and boots the hyperd pod. Containers that name that
sandbox (io.kubernetes.cri.sandbox-id) join the same pod, the same VM, the same
shim. Every pid containerd is told is the VM's (QEMU's) host pid, the one process
that holds the task on the host; `Pids` lists the guest's pids.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .. import __version__, hostpaths, paths
from ..errors import UserError
from ..log import get_logger
from . import ocispec, rootfs
from .bundle import TaskRecord
from .events import Publisher, timestamp
from .hyperd import Hyperd
from .process import CREATED, RUNNING, STOPPED, Process, parse_time
from .protogen import Protos
from .status import Code, RpcError, not_found
from .stdio import ProcessIO

log = get_logger()

HYPERD_EXEC_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
REATTACH_ATTEMPTS = 120  # ~ a minute for hyperd to come back before a task counts as lost


class Task:
    def __init__(
        self,
        task_id: str,
        bundle: str,
        record: TaskRecord,
        init: Process,
        rootfs: list,
        terminal: bool,
    ) -> None:
        self.id, self.bundle, self.record = task_id, bundle, record
        self.init = init
        self.execs: dict[str, Process] = {}
        self.rootfs = rootfs
        self.terminal = terminal

    def process(self, exec_id: str) -> Process:
        if not exec_id:
            return self.init
        process = self.execs.get(exec_id)
        if process is None:
            raise not_found(f"exec {exec_id} of task {self.id}")
        return process


class TaskService:
    def __init__(
        self,
        protos: Protos,
        hyperd: Hyperd,
        publisher: Publisher,
        namespace: str,
        config_file: str | None,
        on_idle: Callable[[], None],
    ) -> None:
        self.p, self.hyperd, self.events = protos, hyperd, publisher
        self.namespace, self.config_file, self.on_idle = namespace, config_file, on_idle
        self.tasks: dict[str, Task] = {}
        self.pod_id: str | None = None
        self.sandbox_id: str | None = None
        self.vm_pid = 0
        self.paused = False
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self.idle = False

    def _message(self, name: str, **fields):
        return self.p.message(name)(**fields)

    def _empty(self):
        return self._message("google.protobuf.Empty")

    def _task(self, task_id: str) -> Task:
        task = self.tasks.get(task_id)
        if task is None:
            raise not_found(f"task {task_id}")
        return task

    # -- create ---------------------------------------------------------------------

    def Create(self, request):  # noqa: N802 (the Task service's method names)
        if request.checkpoint:
            raise RpcError(Code.UNIMPLEMENTED, "checkpoints are not supported")
        spec = ocispec.read_spec(request.bundle)
        group = ocispec.grouping(spec, request.id)
        io = ProcessIO(request.stdin, request.stdout, request.stderr, request.terminal)
        with self._lock:
            if request.id in self.tasks:
                raise RpcError(Code.ALREADY_EXISTS, f"task {request.id} already exists")
            if group.is_sandbox:
                if self.pod_id is not None:
                    raise RpcError(Code.ALREADY_EXISTS, f"this shim already runs pod {self.pod_id}")
                self._check(spec, request.id)  # a refusal must not cost a VM boot
                self._create_pod(spec, request.id, request.bundle)
            elif group.sandbox_id != self.sandbox_id or self.pod_id is None:
                raise RpcError(
                    Code.FAILED_PRECONDITION,
                    f"sandbox {group.sandbox_id} is not served by this shim",
                )
            try:
                task = self._create_container(request, spec, group.is_sandbox, io)
            except BaseException:
                if group.is_sandbox:
                    self._remove_pod()
                    TaskRecord.remove(request.bundle)
                raise
            self.tasks[request.id] = task
        self.events.publish(
            "TaskCreate",
            container_id=request.id,
            bundle=request.bundle,
            rootfs=list(request.rootfs),
            checkpoint=request.checkpoint,
            pid=self.vm_pid,
            io=self._message(
                "containerd.events.TaskIO",
                stdin=request.stdin,
                stdout=request.stdout,
                stderr=request.stderr,
                terminal=request.terminal,
            ),
        )
        return self._message("containerd.task.v2.CreateTaskResponse", pid=self.vm_pid)

    def _check(self, spec: dict[str, Any], task_id: str) -> None:
        """What hyperd would refuse of this container, asked before its pod boots."""
        body = ocispec.container_spec(spec, task_id, self.namespace, "/")
        protected = paths.own_paths(self.config_file)
        try:
            for bind in body["binds"]:
                hostpaths.check(bind["source"], f"mount at {bind['path']}", protected)
        except UserError as e:
            raise RpcError(Code.INVALID_ARGUMENT, str(e)) from None

    def _create_pod(self, spec: dict[str, Any], task_id: str, bundle: str) -> None:
        body, pod_id = ocispec.pod_spec(spec, self.namespace, task_id)
        # Recorded before hyperd is asked: a shim killed while the VM boots leaves
        # containerd's `delete` the pod to remove (it has no container yet).
        TaskRecord(pod=pod_id, container="", sandbox=True, config=self.config_file).save(bundle)
        try:
            pod = self.hyperd.create_pod(body, ocispec.network_namespace(spec))
        except BaseException:
            TaskRecord.remove(bundle)
            raise
        self.pod_id, self.sandbox_id = pod["id"], task_id
        self.vm_pid = int((pod.get("vm") or {}).get("pid") or 0)
        log.info("pod running", pod_id=pod_id, vm_pid=self.vm_pid)

    def _remove_pod(self) -> None:
        if self.pod_id:
            self.hyperd.remove_pod(self.pod_id)
        self.pod_id = self.sandbox_id = None
        self.vm_pid = 0

    def _create_container(
        self, request, spec: dict[str, Any], is_sandbox: bool, io: ProcessIO
    ) -> Task:
        pod_id = self.pod_id
        if pod_id is None:  # the sandbox's own container made it; create() checked that
            raise RpcError(Code.FAILED_PRECONDITION, "no pod to create the container in")
        try:
            root = rootfs.mount_rootfs(
                request.bundle, list(request.rootfs), (spec.get("root") or {}).get("path")
            )
        except OSError as e:
            raise RpcError(Code.INVALID_ARGUMENT, f"rootfs: {e}") from None
        try:
            body = ocispec.container_spec(spec, request.id, self.namespace, root)
            container = self.hyperd.create_container(pod_id, body, stdin_open=bool(request.stdin))
        except BaseException:
            rootfs.unmount_rootfs(request.bundle)
            raise
        record = TaskRecord(
            pod=self.pod_id,
            container=container["id"],
            sandbox=is_sandbox,
            config=self.config_file,
            vm_pid=self.vm_pid,
        )
        record.save(request.bundle)
        init = Process(request.id, "", io)
        return Task(
            request.id, request.bundle, record, init, list(request.rootfs), request.terminal
        )

    # -- start ------------------------------------------------------------------------

    def Start(self, request):  # noqa: N802
        task = self._task(request.id)
        process = task.process(request.exec_id)
        if process.status != CREATED:
            raise RpcError(Code.FAILED_PRECONDITION, f"process {process.id} was started already")
        if request.exec_id:
            self._start_exec(task, process)
        else:
            stream = self.hyperd.attach(task.record.container)  # first: no output is missed
            try:
                self.hyperd.start_container(task.record.container)
            except BaseException:
                stream.close()
                raise
            process.started(self.vm_pid)
            self.events.publish("TaskStart", container_id=task.id, pid=self.vm_pid)
            threading.Thread(target=self._follow, args=(task, stream), daemon=True).start()
        return self._message("containerd.task.v2.StartResponse", pid=process.pid)

    def _start_exec(self, task: Task, process: Process) -> None:
        if task.init.status != RUNNING:
            raise RpcError(Code.FAILED_PRECONDITION, f"task {task.id} is not running")
        spec = process.spec or {}
        body: dict[str, Any] = {
            "command": spec["args"],
            "tty": bool(spec.get("terminal")),
            "env": list(spec.get("env") or []),
            "exec_id": process.hyperd_exec_id,
        }
        if spec.get("cwd"):
            body["cwd"] = spec["cwd"]
        user = spec.get("user") or {}
        if user:
            body["user"] = f"{user.get('uid', 0)}:{user.get('gid', 0)}"
        stream = self.hyperd.exec(task.record.container, body)
        process.started(self.vm_pid)
        self.events.publish(
            "TaskExecStarted", container_id=task.id, exec_id=process.exec_id, pid=self.vm_pid
        )

        def pump() -> None:
            if not process.io.run(
                stream, lambda: None, lambda code, error: self._exited(task, process, code)
            ):
                # an exec's stream cannot be attached again: hyperd restarted under it
                self._exited(task, process, None)

        threading.Thread(target=pump, daemon=True).start()

    def _follow(self, task: Task, stream) -> None:
        """Pump the init's stdio until it exits, attaching again if hyperd restarts."""
        process = task.init
        while True:
            finished = process.io.run(
                stream, lambda: None, lambda code, error: self._init_exited(task, code)
            )
            if finished or process.status == STOPPED:
                return
            stream = self._reattach(task)
            if stream is None:
                return

    def _reattach(self, task: Task):
        for attempt in range(REATTACH_ATTEMPTS):
            if self._closing.wait(min(0.1 * attempt, 1.0)):
                return None
            try:
                record = self.hyperd.container(task.record.container)
                if record is None or record.get("state") != "running":
                    self._init_exited(task, (record or {}).get("exit_code"), record)
                    return None
                log.info("attached again after hyperd restarted", task=task.id)
                return self.hyperd.attach(task.record.container)
            except RpcError as e:
                log.info("hyperd not back yet", task=task.id, error=e.message)
        self._exited(task, task.init, None)
        return None

    def _init_exited(self, task: Task, code: int | None, record: dict | None = None) -> None:
        if record is None:  # the exit's time as hyperd recorded it, to the microsecond
            try:
                record = self.hyperd.container(task.record.container)
            except RpcError:
                record = None
        at = parse_time((record or {}).get("finished"))
        if code is None and record and record.get("exit_code") is not None:
            code = record["exit_code"]
        self._exited(task, task.init, code, at)

    def _exited(
        self, task: Task, process: Process, code: int | None, at: datetime | None = None
    ) -> None:
        if process.set_exited(code, at):
            log.info(
                "process exited", task=task.id, exec_id=process.exec_id, status=process.exit_status
            )
            self.events.publish(
                "TaskExit",
                container_id=task.id,
                id=process.id,
                pid=process.pid,
                exit_status=process.exit_status,
                exited_at=process.exited_at,
            )

    # -- signals, waits, state ---------------------------------------------------------

    def Kill(self, request):  # noqa: N802
        task = self._task(request.id)
        process = task.process(request.exec_id)
        if process.status == STOPPED:
            raise not_found(f"process {process.id} already finished")
        if process.status == CREATED:  # never ran: it ends as if the signal killed it
            self._exited(task, process, 128 + request.signal)
            return self._empty()
        try:
            self.hyperd.kill(
                task.record.container,
                request.signal,
                process.hyperd_exec_id if request.exec_id else None,
            )
        except RpcError as e:
            if e.code == Code.FAILED_PRECONDITION:  # it ended meanwhile
                raise not_found(f"process {process.id} already finished") from None
            raise
        return self._empty()

    def Wait(self, request):  # noqa: N802
        process = self._task(request.id).process(request.exec_id)
        process.exited.wait()
        response = self._message("containerd.task.v2.WaitResponse", exit_status=process.exit_status)
        response.exited_at.CopyFrom(timestamp(self.p, process.exited_at))
        return response

    def State(self, request):  # noqa: N802
        task = self._task(request.id)
        process = task.process(request.exec_id)
        status = {CREATED: "CREATED", RUNNING: "RUNNING", STOPPED: "STOPPED"}[process.status]
        if status == "RUNNING" and self.paused:
            status = "PAUSED"
        response = self._message(
            "containerd.task.v2.StateResponse",
            id=task.id,
            bundle=task.bundle,
            pid=process.pid,
            status=self.p.enum("containerd.v1.types.Status").values_by_name[status].number,
            stdin=process.io.stdin_path,
            stdout=process.io.stdout_path,
            stderr=process.io.stderr_path,
            terminal=process.io.terminal,
            exit_status=process.exit_status,
            exec_id=request.exec_id,
        )
        if process.exited_at:
            response.exited_at.CopyFrom(timestamp(self.p, process.exited_at))
        return response

    def Pids(self, request):  # noqa: N802
        task = self._task(request.id)
        if task.init.status != RUNNING:
            return self._message("containerd.task.v2.PidsResponse")
        found = self.hyperd.processes(task.record.container)
        info = self.p.message("containerd.v1.types.ProcessInfo")
        pids = [found["pid"], *found["execs"].values()]
        return self._message(
            "containerd.task.v2.PidsResponse", processes=[info(pid=pid) for pid in pids if pid]
        )

    # -- exec, io -------------------------------------------------------------------------

    def Exec(self, request):  # noqa: N802
        task = self._task(request.id)
        if task.init.status != RUNNING:
            raise RpcError(Code.FAILED_PRECONDITION, f"task {task.id} is not running")
        if request.exec_id in task.execs or not request.exec_id:
            raise RpcError(Code.ALREADY_EXISTS, f"exec {request.exec_id!r} already exists")
        try:
            spec = json.loads(request.spec.value)
        except ValueError:
            raise RpcError(Code.INVALID_ARGUMENT, "the exec's process spec is not JSON") from None
        args = spec.get("args") if isinstance(spec, dict) else None
        if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
            raise RpcError(Code.INVALID_ARGUMENT, "the exec's args must be a list of strings")
        io = ProcessIO(request.stdin, request.stdout, request.stderr, request.terminal)
        process = Process(task.id, request.exec_id, io, spec)
        process.hyperd_exec_id = (
            request.exec_id
            if HYPERD_EXEC_ID.fullmatch(request.exec_id)
            else ocispec.safe_name("exec", request.exec_id)
        )
        task.execs[request.exec_id] = process
        self.events.publish("TaskExecAdded", container_id=task.id, exec_id=request.exec_id)
        return self._empty()

    def ResizePty(self, request):  # noqa: N802
        process = self._task(request.id).process(request.exec_id)
        process.io.resize(request.height, request.width)
        return self._empty()

    def CloseIO(self, request):  # noqa: N802
        process = self._task(request.id).process(request.exec_id)
        if request.stdin:
            process.io.close_stdin()
        return self._empty()

    # -- pause ------------------------------------------------------------------------------

    def _whole_pod(self, task_id: str) -> Task:
        task = self._task(task_id)
        if task.id != self.sandbox_id and len(self.tasks) > 1:
            raise RpcError(
                Code.FAILED_PRECONDITION,
                f"only a whole pod pauses (its VM): pause the sandbox {self.sandbox_id}",
            )
        return task

    def Pause(self, request):  # noqa: N802
        task = self._whole_pod(request.id)
        self.hyperd.pause_pod(self.pod_id)
        self.paused = True
        self.events.publish("TaskPaused", container_id=task.id)
        return self._empty()

    def Resume(self, request):  # noqa: N802
        task = self._whole_pod(request.id)
        self.hyperd.unpause_pod(self.pod_id)
        self.paused = False
        self.events.publish("TaskResumed", container_id=task.id)
        return self._empty()

    # -- delete, shutdown ----------------------------------------------------------------------

    def Delete(self, request):  # noqa: N802
        task = self._task(request.id)
        process = task.process(request.exec_id)
        if process.status == RUNNING:
            raise RpcError(Code.FAILED_PRECONDITION, f"process {process.id} is still running")
        if request.exec_id:
            task.execs.pop(request.exec_id, None)
        else:
            self._delete_task(task)
        response = self._message(
            "containerd.task.v2.DeleteResponse", pid=process.pid, exit_status=process.exit_status
        )
        response.exited_at.CopyFrom(timestamp(self.p, process.exited_at))
        return response

    def _delete_task(self, task: Task) -> None:
        with self._lock:
            self.hyperd.remove_container(task.record.container)
            rootfs.unmount_rootfs(task.bundle)
            if task.id == self.sandbox_id:  # the pod, its VM and whatever still ran in it go
                for other in list(self.tasks.values()):
                    for process in (other.init, *other.execs.values()):
                        self._exited(other, process, None)
                self._remove_pod()
            self.tasks.pop(task.id, None)
            TaskRecord.remove(task.bundle)
        process = task.init
        self.events.publish(
            "TaskDelete",
            container_id=task.id,
            id=task.id,
            pid=process.pid,
            exit_status=process.exit_status,
            exited_at=process.exited_at or datetime.now(UTC),
        )

    def Connect(self, request):  # noqa: N802
        return self._message(
            "containerd.task.v2.ConnectResponse",
            shim_pid=os.getpid(),
            task_pid=self.vm_pid,
            version=f"hypercontainer {__version__}",
        )

    def Shutdown(self, request):  # noqa: N802
        with self._lock:
            if self.tasks and not request.now:
                return self._empty()
            self.idle = True
        return self._empty()

    def after_answer(self, method: str) -> None:
        """Called once an answer is on its way: a Shutdown that found nothing left ends
        the shim (after the answer, so containerd gets it)."""
        if method == "Shutdown" and self.idle:
            self._closing.set()
            self.on_idle()

    def Stats(self, request):  # noqa: N802
        raise RpcError(Code.UNIMPLEMENTED, "task statistics are not collected inside the VM yet")

    def Update(self, request):  # noqa: N802
        raise RpcError(Code.UNIMPLEMENTED, "a VM's resources are fixed when its pod boots")

"""Every endpoint of hyperd: one function per hyperctl verb, over the Runtime."""

from __future__ import annotations

import os
import platform
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import __version__, drivers, events
from .. import spec as podspec
from ..diskspace import space_on
from ..drivers import PortForward
from ..errors import HyperError, UserError
from ..guest.agent.protocol import process_key
from ..logs import stamp
from ..model import ContainerState, PodState
from ..runtime import Runtime
from ..specload import parse_pod_spec
from ..subscribers import Listener
from . import models, streams
from .http import Request, Router

MAX_ARCHIVE = 16 << 30


def build_router(runtime: Runtime) -> Router:  # noqa: C901 - a route per nested function
    api = Router()
    store = runtime.store

    def pod_view(pod) -> models.PodView:
        containers = [c.name for c in store.containers(pod.id)]
        return models.PodView(**pod.model_dump(), address=pod.guest_ip, containers=containers)

    # -- daemon ---------------------------------------------------------------

    @api.add("GET", "/version", "Versions of hyperd and its Python")
    def version(request: Request) -> dict[str, str]:
        return {"version": __version__, "python": platform.python_version()}

    @api.add("GET", "/info", "Drivers, guest image, state root and counts")
    def info(request: Request) -> dict[str, Any]:
        return runtime_info(runtime)

    @api.add("GET", "/openapi.json", "This API, as an OpenAPI 3.1 document")
    def openapi(request: Request) -> dict[str, Any]:
        from .openapi import document

        return document(api)

    # -- pods -------------------------------------------------------------------

    @api.add("GET", "/pods", "All pods", answer=list[models.PodView])
    def list_pods(request: Request) -> list[models.PodView]:
        return [pod_view(p) for p in store.pods()]

    @api.add(
        "POST",
        "/pods",
        "Create a pod from a pod file (and start it)",
        body=models.CreatePod,
        answer=models.PodView,
    )
    def create_pod(request: Request) -> models.PodView:
        body = request.model(models.CreatePod)
        spec = parse_pod_spec(body.spec)
        if body.start:
            return pod_view(
                runtime.run_pod(spec, stdin_open=body.stdin_open, netns_path=body.netns)
            )
        return pod_view(
            runtime.create_pod(
                spec, stdin_open=body.stdin_open, transient=body.transient, netns_path=body.netns
            )
        )

    @api.add("GET", "/pods/{ref}", "One pod", answer=models.PodView)
    def get_pod(request: Request) -> models.PodView:
        return pod_view(store.pod(request.params["ref"]))

    @api.add("POST", "/pods/{ref}/start", "Boot a pending or stopped pod", answer=models.PodView)
    def start_pod(request: Request) -> models.PodView:
        return pod_view(runtime.start_pod(request.params["ref"]))

    @api.add(
        "POST",
        "/pods/{ref}/stop",
        "Stop a pod's containers and power its VM off",
        answer=models.PodView,
        query={"t": "seconds before SIGKILL"},
    )
    def stop_pod(request: Request) -> models.PodView:
        timeout = request.number("t", 10.0)
        return pod_view(runtime.stop_pod(request.params["ref"], timeout=timeout))

    @api.add("POST", "/pods/{ref}/pause", "Pause a pod's VM", answer=models.PodView)
    def pause_pod(request: Request) -> models.PodView:
        return pod_view(runtime.pause_pod(request.params["ref"]))

    @api.add("POST", "/pods/{ref}/unpause", "Resume a paused pod's VM", answer=models.PodView)
    def unpause_pod(request: Request) -> models.PodView:
        return pod_view(runtime.unpause_pod(request.params["ref"]))

    @api.add("DELETE", "/pods/{ref}", "Remove a pod (stopping it first)", answer=models.Message)
    def remove_pod(request: Request) -> models.Message:
        pod = store.pod(request.params["ref"])
        runtime.remove_pod(pod.id)
        return models.Message(message=pod.id)

    # -- port mappings ------------------------------------------------------------

    def forward_of(body: models.PortMappingBody) -> PortForward:
        return PortForward(body.protocol, body.host_ip, body.host_port, body.container_port)

    @api.add("GET", "/pods/{ref}/ports", "A pod's port mappings")
    def list_ports(request: Request) -> list[dict[str, Any]]:
        return [f.__dict__ for f in runtime.ports(request.params["ref"])]

    def change_ports(request: Request, add: bool) -> list[dict[str, Any]]:
        body = request.model(models.PortMappingsBody)
        forwards = [forward_of(m) for m in body.mappings]
        return [f.__dict__ for f in runtime.change_ports(request.params["ref"], forwards, add)]

    @api.add(
        "POST",
        "/pods/{ref}/ports",
        "Add port mappings to a running pod (all or none)",
        body=models.PortMappingsBody,
    )
    def add_ports(request: Request) -> list[dict[str, Any]]:
        return change_ports(request, add=True)

    @api.add(
        "POST",
        "/pods/{ref}/ports/delete",
        "Remove port mappings from a running pod (all or none)",
        body=models.PortMappingsBody,
    )
    def delete_ports(request: Request) -> list[dict[str, Any]]:
        return change_ports(request, add=False)

    # -- containers ---------------------------------------------------------------

    @api.add(
        "GET",
        "/containers",
        "All containers, or a pod's (?pod=)",
        answer=list[models.ContainerView],
        query={"pod": "pod id or name"},
    )
    def list_containers(request: Request) -> list[Any]:
        pod = request.query.get("pod")
        return store.containers(store.pod(pod).id if pod else None)

    @api.add(
        "POST",
        "/pods/{ref}/containers",
        "Create a container in a pod",
        body=models.CreateContainer,
        answer=models.ContainerView,
    )
    def create_container(request: Request) -> Any:
        body = request.model(models.CreateContainer)
        spec = parse_container(body.spec)
        return runtime.containers.create(
            request.params["ref"], spec, start=body.start, stdin_open=body.stdin_open
        )

    @api.add("GET", "/containers/{ref}", "One container", answer=models.ContainerView)
    def get_container(request: Request) -> Any:
        return store.container(request.params["ref"])

    @api.add("POST", "/containers/{ref}/start", "Start a container", answer=models.ContainerView)
    def start_container(request: Request) -> Any:
        return runtime.containers.start(request.params["ref"])

    @api.add(
        "POST",
        "/containers/{ref}/stop",
        "Stop a container (stop signal, then SIGKILL)",
        answer=models.ContainerView,
        query={"t": "seconds before SIGKILL"},
    )
    def stop_container(request: Request) -> Any:
        return runtime.containers.stop(request.params["ref"], timeout=request.number("t", 10.0))

    @api.add(
        "POST",
        "/containers/{ref}/kill",
        "Send a signal to a container or one of its execs",
        answer=models.ContainerView,
        query={
            "signal": "name or number (default KILL)",
            "exec": "an exec's id: signal that process",
        },
    )
    def kill_container(request: Request) -> Any:
        return runtime.containers.kill(
            request.params["ref"], request.query.get("signal"), exec_id=request.query.get("exec")
        )

    @api.add(
        "GET",
        "/containers/{ref}/processes",
        "The guest's process ids of a running container and of its execs",
    )
    def processes(request: Request) -> dict[str, Any]:
        return runtime.containers.processes(request.params["ref"])

    @api.add(
        "POST",
        "/containers/{ref}/wait",
        "Wait until a container is not running",
        answer=models.ExitCode,
        query={"timeout": "seconds"},
    )
    def wait_container(request: Request) -> models.ExitCode:
        container = runtime.containers.wait(request.params["ref"], request.number("timeout"))
        return models.ExitCode(exit_code=container.exit_code, state=container.state)

    @api.add(
        "DELETE",
        "/containers/{ref}",
        "Remove a container (stopping it first)",
        answer=models.Message,
    )
    def remove_container(request: Request) -> models.Message:
        container = store.container(request.params["ref"])
        runtime.containers.remove(container.id)
        return models.Message(message=container.name)

    @api.add(
        "GET",
        "/containers/{ref}/logs",
        "A container's output, as JSON lines",
        kind="lines",
        query={
            "follow": "keep streaming",
            "tail": "last N entries",
            "since": "only entries from this time (ISO 8601)",
        },
    )
    def logs(request: Request) -> Iterator[dict[str, Any]]:
        tail = request.number("tail")
        entries = runtime.containers.logs(
            request.params["ref"],
            tail=None if tail is None else int(tail),
            follow=request.flag("follow"),
            since=request.time("since"),
        )
        return (
            {"time": t, "stream": s, "log": d.decode("utf-8", "surrogateescape")}
            for t, s, d in entries
        )

    # -- events -----------------------------------------------------------------------

    @api.add(
        "GET",
        "/events",
        "Lifecycle events as JSON lines: those since a time, then new ones",
        kind="lines",
        query={
            "since": "replay events from this time (ISO 8601)",
            "until": "stop at this time (ISO 8601)",
            "follow": "keep streaming (default 1)",
        },
    )
    def list_events(request: Request) -> Iterator[dict[str, Any]]:
        if runtime.hooks.manager.is_blocked(events.NAME):
            raise UserError("events are off: the events hook is in disabled_hooks")
        since, until = request.time("since"), request.time("until")
        return runtime.events.follow(
            since=stamp(since) if since else "",
            until=stamp(until) if until else "",
            follow=request.query.get("follow", "1") not in ("0", "false", "no"),
        )

    @api.add(
        "POST",
        "/containers/{ref}/attach",
        "Attach to a container's stdio (upgrade)",
        kind="upgrade",
    )
    def attach(request: Request):
        container = store.container(request.params["ref"])
        listener = Listener()
        runtime.containers.attach(container.id, listener)
        finished = container.state in (ContainerState.SUCCEEDED, ContainerState.FAILED)
        pod = store.pod(container.pod_id)
        if finished and pod.state not in (PodState.PENDING,):
            listener.exit(container.exit_code)
        elif container.state == ContainerState.RUNNING:
            listener.started()
        stdin = stdin_of(container.id, None)

        def run(connection, rfile) -> None:
            streams.serve(
                connection,
                rfile,
                listener,
                stdin,
                lambda outcome: runtime.containers.detach(container.id, listener),
            )

        return run

    @api.add(
        "POST",
        "/containers/{ref}/exec",
        "Run a command in a container (upgrade)",
        kind="upgrade",
        body=models.ExecBody,
    )
    def exec_(request: Request):
        body = request.model(models.ExecBody)
        container = store.container(request.params["ref"])
        listener = Listener()
        exec_id = runtime.containers.exec(
            container.id,
            body.command,
            body.tty,
            listener,
            env=body.env,
            cwd=body.cwd,
            user=body.user,
            exec_id=body.exec_id,
        )
        key = process_key(container.id, exec_id)
        stdin = stdin_of(container.id, exec_id)

        def end(outcome: str) -> None:
            runtime.containers.detach(key, listener)
            if outcome == streams.GONE:  # an exec lives as long as its client
                runtime.containers.signal_exec(container.id, exec_id, signal.SIGKILL)

        def run(connection, rfile) -> None:
            streams.serve(connection, rfile, listener, stdin, end)

        return run

    def stdin_of(container_id: str, exec_id: str | None) -> streams.Stdin:
        key = process_key(container_id, exec_id)

        def agent():
            return runtime.containers.session_for(key, container_id).agent

        def send_signal(signum: int) -> None:
            if exec_id is None:
                runtime.containers.kill(container_id, signum)
            else:
                runtime.containers.signal_exec(container_id, exec_id, signum)

        return streams.Stdin(
            write=lambda data: agent().write_stdin(key, data),
            close=lambda: agent().close_stdin(key),
            resize=lambda rows, cols: agent().resize(key, rows, cols),
            signal=send_signal,
        )

    # -- images ---------------------------------------------------------------------

    @api.add("GET", "/images", "Images in the local store")
    def list_images(request: Request) -> list[dict[str, Any]]:
        return [image.__dict__ for image in runtime.images.list()]

    @api.add("GET", "/images/{ref}", "One local image")
    def get_image(request: Request) -> dict[str, Any]:
        image = runtime.images.resolve(request.params["ref"])
        return {"id": image.id, "reference": image.reference, "layers": image.layers}

    @api.add(
        "POST",
        "/images/pull",
        "Pull an image; progress as JSON lines",
        kind="lines",
        body=models.PullBody,
    )
    def pull(request: Request) -> Iterator[dict[str, Any]]:
        body = request.model(models.PullBody)
        return progress_of(
            lambda report: runtime.images.pull(body.reference, report),
            lambda image: {"status": "pulled", "id": image.id, "reference": image.reference},
        )

    @api.add(
        "POST",
        "/images/push",
        "Push a local image; progress as JSON lines",
        kind="lines",
        body=models.PushBody,
    )
    def push(request: Request) -> Iterator[dict[str, Any]]:
        body = request.model(models.PushBody)
        return progress_of(
            lambda report: runtime.images.push(body.reference, body.destination, report),
            lambda pushed: {
                "status": "push complete",
                "digest": pushed.digest,
                "reference": pushed.reference,
            },
        )

    @api.add("POST", "/images/tag", "Name a local image", body=models.TagBody)
    def tag(request: Request) -> models.Message:
        body = request.model(models.TagBody)
        return models.Message(message=runtime.images.tag(body.source, body.target))

    @api.add("DELETE", "/images/{ref}", "Remove an image", query={"force": "even if used"})
    def remove_image(request: Request) -> list[str]:
        in_use = runtime.containers.images_in_use()
        return runtime.images.remove(
            request.params["ref"], in_use=in_use, force=request.flag("force")
        )

    @api.add("POST", "/images/load", "Load an OCI or docker archive sent as the body")
    def load(request: Request) -> list[str]:
        length = request.content_length()
        if not 0 < length <= MAX_ARCHIVE:
            raise UserError("the archive is empty or too large")
        with (
            space_on("hyperd's state root", runtime.transfers_dir),
            tempfile.NamedTemporaryFile(dir=runtime.transfers_dir, suffix=".tar") as f,
        ):
            remaining = length
            while remaining:
                chunk = request.handler.rfile.read(min(remaining, 1 << 20))
                if not chunk:
                    raise UserError("the archive upload was cut short")
                f.write(chunk)
                remaining -= len(chunk)
            f.flush()
            try:
                return runtime.images.load(Path(f.name))
            except HyperError as e:  # the client knows its file; our staging name is no use
                text = str(e).replace(f"{f.name}: ", "").replace(f.name, "the archive")
                raise type(e)(text) from None

    @api.add(
        "POST",
        "/images/save",
        "Write images to an OCI archive sent back as the body",
        kind="raw",
        body=models.SaveBody,
    )
    def save(request: Request) -> Iterator[bytes]:
        body = request.model(models.SaveBody)
        fd, name = tempfile.mkstemp(dir=runtime.transfers_dir, suffix=".tar")
        os.close(fd)
        try:
            with space_on("hyperd's state root", runtime.transfers_dir):
                runtime.images.save(body.references, Path(name))
        except BaseException:
            os.unlink(name)
            raise
        return file_chunks(Path(name))

    @api.add("POST", "/login", "Check and store registry credentials", body=models.LoginBody)
    def login(request: Request) -> models.Message:
        body = request.model(models.LoginBody)
        runtime.images.login(body.registry, body.username, body.password)
        return models.Message(message="Login Succeeded")

    @api.add("POST", "/logout", "Forget stored registry credentials", body=models.LogoutBody)
    def logout(request: Request) -> models.Message:
        body = request.model(models.LogoutBody)
        return models.Message(message=runtime.images.logout(body.registry))

    return api


def parse_container(data: dict[str, Any]) -> podspec.Container:
    """A container body, checked with the pod file's rules and wording."""
    spec = parse_pod_spec({"containers": [data]})
    return spec.containers[0]


def file_chunks(path: Path) -> Iterator[bytes]:
    try:
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                yield chunk
    finally:
        path.unlink(missing_ok=True)


def progress_of(work, last_word) -> Iterator[dict[str, Any]]:
    """Run `work(report)` in a thread, yielding its progress events, then
    `last_word(result)` (or the error) as the last line."""
    import queue
    import threading

    events: queue.Queue = queue.Queue()

    def run() -> None:
        try:
            events.put(last_word(work(events.put)))
        except Exception as e:  # noqa: BLE001 - delivered to the client as the last line
            events.put({"error": str(e).splitlines()[0] if str(e) else type(e).__name__})
        events.put(None)

    threading.Thread(target=run, daemon=True).start()
    while (event := events.get()) is not None:
        yield event


def runtime_info(runtime: Runtime) -> dict[str, Any]:
    config = runtime.config
    try:
        guest = runtime.guest_image().describe()
    except Exception as e:  # noqa: BLE001 - info must answer even when the guest image cannot be built
        guest = {"error": str(e)}
    pods = runtime.store.pods()
    return {
        "version": __version__,
        "hypervisor": runtime.hypervisor.describe(),
        "templates": runtime.hypervisor.templates(),
        "network": runtime.network.describe(),
        "images": runtime.images.describe(),
        "installed": {kind: drivers.installed(kind) for kind in drivers.KINDS},
        "selected": {
            "hypervisor": config.hypervisor,
            "network": config.network,
            "images": config.images,
        },
        # Each selected driver's effective settings: its table with every default filled in.
        "settings": {
            driver.name: driver.settings.model_dump(mode="json")
            for driver in (runtime.hypervisor, runtime.network, runtime.images)
        },
        "hooks": runtime.hooks.names(),
        "guest": guest,
        "state_root": str(config.state_root),
        "run_root": str(config.run_root),
        "pods": len(pods),
        "running_pods": sum(p.state == PodState.RUNNING for p in pods),
        "containers": len(runtime.store.containers()),
        "image_count": len(runtime.images.list()),
        "addresses": {p.name: p.guest_ip for p in pods if p.guest_ip},
    }

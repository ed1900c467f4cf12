"""The shim's side of hyperd's API: every pod and container the shim runs is hyperd's.

It speaks through hyperctl's own client (one request per connection, hyperd started
as hyperctl starts it when none listens), so `hyperctl list` shows what Kubernetes
runs. hyperd's answers become gRPC statuses containerd understands: 404 NotFound,
409 FailedPrecondition, 400 InvalidArgument, anything else Unavailable/Internal.
"""

from __future__ import annotations

from typing import Any

from ..cli.client import Client, CommandError, path_of
from .status import Code, RpcError

CODES = {400: Code.INVALID_ARGUMENT, 404: Code.NOT_FOUND, 409: Code.FAILED_PRECONDITION}


class Hyperd:
    def __init__(self, config_file: str | None) -> None:
        self.config_file = config_file

    @property
    def client(self) -> Client:
        # A fresh client each time: each checks that hyperd listens and starts it if not,
        # so a hyperd that died (or restarted) is found again.
        return Client(self.config_file)

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, Any] | None = None,
        missing_ok: bool = False,
    ) -> Any:
        try:
            status, answer = self.client.call(method, path, body, query)
        except CommandError as e:  # hyperd unreachable, even after starting one
            raise RpcError(Code.UNAVAILABLE, str(e)) from None
        if status == 404 and missing_ok:
            return None
        if status >= 400:
            message = answer.get("error") if isinstance(answer, dict) else None
            raise RpcError(
                CODES.get(status, Code.INTERNAL), f"hyperd: {message or f'HTTP {status}'}"
            )
        return answer

    # -- pods -------------------------------------------------------------------

    def create_pod(self, spec: dict[str, Any], netns: str | None) -> dict[str, Any]:
        """Create and boot the pod (its VM); on failure hyperd leaves nothing of it."""
        body: dict[str, Any] = {"spec": spec, "start": True}
        if netns:
            body["netns"] = netns
        return self._call("POST", "/pods", body)

    def pod(self, pod_id: str) -> dict[str, Any] | None:
        return self._call("GET", path_of("/pods/{}", pod_id), missing_ok=True)

    def remove_pod(self, pod_id: str) -> None:
        self._call("DELETE", path_of("/pods/{}", pod_id), missing_ok=True)

    def pause_pod(self, pod_id: str) -> None:
        self._call("POST", path_of("/pods/{}/pause", pod_id))

    def unpause_pod(self, pod_id: str) -> None:
        self._call("POST", path_of("/pods/{}/unpause", pod_id))

    # -- containers -----------------------------------------------------------------

    def create_container(
        self, pod_id: str, spec: dict[str, Any], stdin_open: bool
    ) -> dict[str, Any]:
        return self._call(
            "POST",
            path_of("/pods/{}/containers", pod_id),
            {"spec": spec, "start": False, "stdin_open": stdin_open},
        )

    def container(self, container_id: str) -> dict[str, Any] | None:
        return self._call("GET", path_of("/containers/{}", container_id), missing_ok=True)

    def start_container(self, container_id: str) -> dict[str, Any]:
        return self._call("POST", path_of("/containers/{}/start", container_id))

    def kill(self, container_id: str, signal: int, exec_id: str | None = None) -> None:
        query: dict[str, Any] = {"signal": signal}
        if exec_id:
            query["exec"] = exec_id
        self._call("POST", path_of("/containers/{}/kill", container_id), query=query)

    def remove_container(self, container_id: str) -> None:
        self._call("DELETE", path_of("/containers/{}", container_id), missing_ok=True)

    def processes(self, container_id: str) -> dict[str, Any]:
        return self._call("GET", path_of("/containers/{}/processes", container_id))

    # -- streams ---------------------------------------------------------------------

    def attach(self, container_id: str):
        return self._upgrade(path_of("/containers/{}/attach", container_id), None)

    def exec(self, container_id: str, body: dict[str, Any]):
        return self._upgrade(path_of("/containers/{}/exec", container_id), body)

    def _upgrade(self, path: str, body: Any):
        try:
            return self.client.upgrade(path, body)
        except CommandError as e:
            raise RpcError(Code.FAILED_PRECONDITION, f"hyperd: {e}") from None

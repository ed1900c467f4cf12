"""A client for Cloud Hypervisor's REST API, spoken over its unix socket.

One method per endpoint of the API (named after the path: `/vm.add-disk` is
`vm_add_disk`). Request bodies are plain dicts shaped as the OpenAPI schemas
say; the contract tests validate every one of them against the spec.
Cloud Hypervisor answers errors with a JSON array of messages, outermost
first ("Error from API", "The VM could not boot", ...): `ApiError` joins them
into one readable line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
import requests_unixsocket
from hypercontainer.errors import DriverError

API_ROOT = "/api/v1"
DEFAULT_TIMEOUT = 30.0

Body = dict[str, Any]


class ApiError(DriverError):
    """Cloud Hypervisor refused a request; `messages` is its error chain."""

    def __init__(self, endpoint: str, status: int, messages: list[str]) -> None:
        self.endpoint = endpoint
        self.status = status
        self.messages = messages
        detail = ": ".join(messages) or f"HTTP {status}"
        super().__init__(f"cloud-hypervisor {endpoint}: {detail}")


class ApiUnreachable(DriverError):
    """Nothing answers on the API socket (the VMM is gone or not up yet)."""


def error_messages(response: requests.Response) -> list[str]:
    """The messages of an error answer, whatever shape its body has."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return [text] if text else [response.reason or f"HTTP {response.status_code}"]
    if isinstance(body, list):
        return [str(message) for message in body]
    return [json.dumps(body)]


class Client:
    """Cloud Hypervisor's API on the unix socket `socket_path`."""

    def __init__(self, socket_path: Path, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.socket_path = Path(socket_path)
        self.timeout = timeout
        self._base = "http+unix://" + quote(str(self.socket_path), safe="") + API_ROOT
        self._session = requests_unixsocket.Session()

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -----------------------------------------------------------

    def _call(self, method: str, endpoint: str, body: Body | None = None) -> Any:
        try:
            response = self._session.request(
                method, f"{self._base}/{endpoint}", json=body, timeout=self.timeout
            )
        except requests.RequestException as e:
            raise ApiUnreachable(
                f"cloud-hypervisor API at {self.socket_path} is not answering: {e}"
            ) from e
        if not response.ok:
            raise ApiError(endpoint, response.status_code, error_messages(response))
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as e:
            raise DriverError(f"cloud-hypervisor {endpoint}: answer is not JSON") from e

    def _get(self, endpoint: str) -> Any:
        return self._call("GET", endpoint)

    def _put(self, endpoint: str, body: Body | None = None) -> Any:
        return self._call("PUT", endpoint, body)

    # -- the VMM -------------------------------------------------------------

    def vmm_ping(self) -> Body:
        """VmmPingResponse: version, build_version, pid, features."""
        return self._get("vmm.ping")

    def vmm_shutdown(self) -> None:
        """Stop the VMM process itself (the VM, if any, goes with it)."""
        self._put("vmm.shutdown")

    # -- the VM's life -------------------------------------------------------

    def vm_create(self, config: Body) -> None:
        """Create (not boot) the VM from a VmConfig."""
        self._put("vm.create", config)

    def vm_boot(self) -> None:
        self._put("vm.boot")

    def vm_pause(self) -> None:
        self._put("vm.pause")

    def vm_resume(self) -> None:
        self._put("vm.resume")

    def vm_shutdown(self) -> None:
        """Stop the VM at once (no guest involvement); its config stays, bootable again."""
        self._put("vm.shutdown")

    def vm_reboot(self) -> None:
        self._put("vm.reboot")

    def vm_power_button(self) -> None:
        """Press the ACPI power button: asks the guest to power off."""
        self._put("vm.power-button")

    def vm_delete(self) -> None:
        self._put("vm.delete")

    def vm_nmi(self) -> None:
        self._put("vm.nmi")

    # -- inspection ----------------------------------------------------------

    def vm_info(self) -> Body:
        """VmInfo: config, state (Created, Running, Paused, Shutdown), device tree."""
        return self._get("vm.info")

    def vm_counters(self) -> Body:
        return self._get("vm.counters")

    # -- sizing --------------------------------------------------------------

    def vm_resize(
        self,
        desired_vcpus: int | None = None,
        desired_ram: int | None = None,
        desired_balloon: int | None = None,
    ) -> None:
        body = {
            "desired_vcpus": desired_vcpus,
            "desired_ram": desired_ram,
            "desired_balloon": desired_balloon,
        }
        self._put("vm.resize", _present(body))

    def vm_resize_disk(self, disk_id: str, desired_size: int) -> None:
        self._put("vm.resize-disk", {"id": disk_id, "desired_size": desired_size})

    def vm_resize_zone(self, zone_id: str, desired_ram: int) -> None:
        self._put("vm.resize-zone", {"id": zone_id, "desired_ram": desired_ram})

    # -- devices: each add answers PciDeviceInfo (hot-plug) or nothing (cold) --

    def vm_add_device(self, config: Body) -> Body | None:
        return self._put("vm.add-device", config)

    def vm_add_user_device(self, config: Body) -> Body | None:
        return self._put("vm.add-user-device", config)

    def vm_add_disk(self, config: Body) -> Body | None:
        return self._put("vm.add-disk", config)

    def vm_add_fs(self, config: Body) -> Body | None:
        return self._put("vm.add-fs", config)

    def vm_add_generic_vhost_user(self, config: Body) -> Body | None:
        return self._put("vm.add-generic-vhost-user", config)

    def vm_add_pmem(self, config: Body) -> Body | None:
        return self._put("vm.add-pmem", config)

    def vm_add_net(self, config: Body) -> Body | None:
        return self._put("vm.add-net", config)

    def vm_add_vsock(self, config: Body) -> Body | None:
        return self._put("vm.add-vsock", config)

    def vm_add_vdpa(self, config: Body) -> Body | None:
        return self._put("vm.add-vdpa", config)

    def vm_remove_device(self, device_id: str) -> None:
        self._put("vm.remove-device", {"id": device_id})

    # -- snapshots and migration --------------------------------------------

    def vm_snapshot(self, destination_url: str) -> None:
        self._put("vm.snapshot", {"destination_url": destination_url})

    def vm_coredump(self, destination_url: str) -> None:
        self._put("vm.coredump", {"destination_url": destination_url})

    def vm_restore(self, config: Body) -> None:
        """From a RestoreConfig: source_url, prefault, resume, ..."""
        self._put("vm.restore", config)

    def vm_receive_migration(self, config: Body) -> None:
        self._put("vm.receive-migration", config)

    def vm_send_migration(self, config: Body) -> None:
        self._put("vm.send-migration", config)


def _present(body: Body) -> Body:
    """The body without the fields left unset."""
    return {key: value for key, value in body.items() if value is not None}

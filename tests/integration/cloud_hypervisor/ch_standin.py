"""A stand-in for the `cloud-hypervisor` binary, built from its API contract.

No Cloud Hypervisor can run on this machine, so the driver is tested against
this: a program started exactly like the real one (`--api-socket path=...`)
that serves every path of the OpenAPI spec on that unix socket, validates
every request body against the spec's schemas (a bad body is a 400 with the
reasons, recorded in the journal so a test fails on it), and keeps the VMM's
states and answers as the real server does:

- a VM is created (config kept, state Created), booted (Running), paused
  (Paused) and resumed; vm.shutdown stops the VM (its Shutdown state is
  dropped with it) and the config stays, so vm.info says Created again;
- vm.snapshot of a paused VM writes Cloud Hypervisor's three files into an
  existing directory, each created anew: config.json (the VmConfig), state.json
  (here: what the stand-in knows of its guest, the devices and memory ranges
  whose state a real one saves) and memory-ranges (a sparse file the size of
  guest RAM); vm.restore reads them back, only reading, into a VMM that has no
  VM yet, refusing what the real one refuses (another VM there, no such
  directory, a config.json that is no VmConfig, a state.json that does not
  parse or holds no state for a device of the config, a memory-ranges file
  shorter than its ranges, prefault with OnDemand), and comes up Paused unless
  asked to resume;
- 404 where no VM was created; 500 for shutdown, pause, resume and
  power-button without a running VM and for impossible transitions (the real
  server never sends 405); 409 for a device id already in use; 400 for a
  body that does not deserialize; error bodies are JSON arrays of messages.

What a real VMM touches, it touches too: at boot it opens the kernel,
initramfs and disk images, checks that each tap exists, speaks vhost-user to
each virtio-fs socket (a real virtiofsd must answer), writes the serial and
console files, and serves hybrid vsock on the vsock socket: `CONNECT 1024\\n`
is answered `OK 1024\\n` and the stream then echoes (the "guest agent").
It boots no guest: everything here is the contract, never the VMM itself.

Stand-in only options (before the real ones):
  --journal FILE           append one JSON line per request
  --agent-after N          refuse the first N vsock connections (agent not up yet);
                           a guest restored from a snapshot taken once its agent
                           answered answers at once
  --fake-agent             the guest's agent is hypercontainer.testing's FakeGuest
                           (the real agent server, simulated containers) instead of
                           an echo
  --guest-powers-off       a power-button press makes the guest (and VMM) exit
  --no-userfaultfd         restoring OnDemand fails, as where the VMM may not
                           create a userfaultfd
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import socketserver
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ch_openapi import Spec
from hypercontainer.testing.fakeguest import FakeGuest

API_ROOT = "/api/v1"
VERSION = "cloud-hypervisor v0.0.0-standin"
SNAPSHOT_CONFIG, SNAPSHOT_STATE, SNAPSHOT_MEMORY = "config.json", "state.json", "memory-ranges"
RAM_MARKER = b"stand-in guest RAM\n"  # what the memory-ranges file starts with
AGENT_PORT = 1024
VHOST_USER_GET_FEATURES = 1
VIRTIO_F_VERSION_1 = 1 << 32

# Device lists of a VmConfig and the add endpoint of each, with the id prefix
# Cloud Hypervisor gives devices added without an id.
DEVICE_LISTS = {
    "vm.add-disk": ("disks", "_disk"),
    "vm.add-fs": ("fs", "_fs"),
    "vm.add-net": ("net", "_net"),
    "vm.add-pmem": ("pmem", "_pmem"),
    "vm.add-device": ("devices", "_vfio"),
    "vm.add-user-device": ("user_devices", "_user_device"),
    "vm.add-vdpa": ("vdpa", "_vdpa"),
    "vm.add-generic-vhost-user": ("generic_vhost_user", "_generic_vhost_user"),
}


class ApiFailure(Exception):
    def __init__(self, status: int, *messages: str) -> None:
        super().__init__(*messages)
        self.status = status
        self.messages = list(messages)


def not_created(action: str) -> ApiFailure:
    return ApiFailure(404, "Error from API", f"The VM could not {action}", "VM is not created")


def not_running(action: str) -> ApiFailure:
    return ApiFailure(500, "Error from API", f"The VM could not {action}", "VM is not running")


class Guest:
    """What a booted VM holds on the host: the vsock socket and vhost-user links."""

    def __init__(self, config: dict[str, Any], agent_after: int, fake_agent: bool = False) -> None:
        self.state = "Running"
        self.agent_refusals_left = agent_after
        # A booted or restored guest's agent: waiting for a host, no pod in it yet.
        self.agent = FakeGuest() if fake_agent else None
        self.vhost_links: list[socket.socket] = []
        self.vsock: socket.socket | None = None
        try:
            self._open_payload(config)
            for disk in config.get("disks", []):
                self.open_disk(disk)
            for net in config.get("net", []):
                self.open_tap(net)
            for fs in config.get("fs", []):
                self.connect_fs(fs)
            for name in ("serial", "console"):
                self._open_output(config.get(name))
            if "vsock" in config:
                self._serve_vsock(Path(config["vsock"]["socket"]))
        except BaseException:
            self.stop()
            raise

    @staticmethod
    def _open_payload(config: dict[str, Any]) -> None:
        payload = config["payload"]
        for key in ("kernel", "initramfs", "firmware"):
            if key in payload:
                _must_open(payload[key], f"the {key}")

    @staticmethod
    def open_disk(disk: dict[str, Any]) -> None:
        if "path" in disk:
            _must_open(disk["path"], "a disk image")

    @staticmethod
    def open_tap(net: dict[str, Any]) -> None:
        tap = net.get("tap")
        if tap and not Path(f"/sys/class/net/{tap}/tun_flags").exists():
            raise ApiFailure(
                500,
                "Error from API",
                "The VM could not boot",
                f"Error creating virtio-net device: tap {tap} does not exist",
            )

    def connect_fs(self, fs: dict[str, Any]) -> None:
        """Speak vhost-user to the backend, as the VMM does: GET_FEATURES."""
        link = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        link.settimeout(10)
        try:
            link.connect(fs["socket"])
            link.sendall(struct.pack("<III", VHOST_USER_GET_FEATURES, 1, 0))
            request, flags, size = struct.unpack("<III", _recv_exactly(link, 12))
            (features,) = struct.unpack("<Q", _recv_exactly(link, size))
        except (OSError, struct.error) as e:
            link.close()
            raise ApiFailure(
                500, "Error from API", "The VM could not boot", f"vhost-user-fs {fs['socket']}: {e}"
            ) from None
        if request != VHOST_USER_GET_FEATURES or not features & VIRTIO_F_VERSION_1:
            link.close()
            raise ApiFailure(
                500,
                "Error from API",
                "The VM could not boot",
                f"vhost-user-fs {fs['socket']}: not a virtio 1.0 backend",
            )
        self.vhost_links.append(link)

    @staticmethod
    def _open_output(output: dict[str, Any] | None) -> None:
        if output and output.get("mode") == "File":
            with open(output["file"], "a") as f:
                f.write("[cloud-hypervisor stand-in: no guest runs here]\n")

    def _serve_vsock(self, path: Path) -> None:
        self.vsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.vsock.bind(str(path))
        self.vsock.listen()
        threading.Thread(target=self._accept_vsock, args=(self.vsock,), daemon=True).start()

    def _accept_vsock(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._hybrid_vsock, args=(conn,), daemon=True).start()

    def _hybrid_vsock(self, conn: socket.socket) -> None:
        with conn:
            line = b""
            while not line.endswith(b"\n") and len(line) < 64:
                byte = conn.recv(1)
                if not byte:
                    return
                line += byte
            words = line.decode(errors="replace").split()
            if words[:1] != ["CONNECT"] or len(words) != 2 or words[1] != str(AGENT_PORT):
                return  # nothing listens on that port in the guest
            if self.state != "Running" or self.agent_refusals_left > 0:
                self.agent_refusals_left -= 1
                return
            conn.sendall(f"OK {AGENT_PORT}\n".encode())
            if self.agent is not None:
                _splice(conn, self.agent.connect())
                return
            while data := conn.recv(65536):  # the "agent" echoes
                conn.sendall(data)

    def stop(self) -> None:
        self.state = "Shutdown"
        if self.vsock is not None:
            path = self.vsock.getsockname()
            self.vsock.close()
            Path(path).unlink(missing_ok=True)
        for link in self.vhost_links:
            link.close()
        if self.agent is not None:
            self.agent.hang_up()


def _splice(host: socket.socket, agent: socket.socket) -> None:
    """Bytes both ways between the host's connection and the agent's, until either ends."""

    def pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for end in (sink, source):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    towards_host = threading.Thread(target=pump, args=(agent, host), daemon=True)
    towards_host.start()
    with agent:
        pump(host, agent)
        towards_host.join()


def _must_open(path: str, what: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise ApiFailure(
            500,
            "Error from API",
            "The VM could not boot",
            f"Cannot open {what} {path}: {e.strerror}",
        ) from None


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OSError("backend closed the connection")
        data += chunk
    return data


class Vmm:
    """The VMM's state: a VM config (created) and maybe a booted guest."""

    def __init__(self, spec: Spec, options: argparse.Namespace) -> None:
        self.spec = spec
        self.agent_after = options.agent_after
        self.fake_agent = options.fake_agent
        self.guest_powers_off = options.guest_powers_off
        self.userfaultfd = not options.no_userfaultfd
        self.config: dict[str, Any] | None = None
        self.guest: Guest | None = None
        self.lock = threading.Lock()
        self.exit_requested = threading.Event()

    def handle(self, endpoint: str, body: Any) -> tuple[int, Any]:
        action = getattr(self, "do_" + endpoint.replace(".", "_").replace("-", "_"))
        with self.lock:
            return action(body)

    # -- the VMM --------------------------------------------------------------

    def do_vmm_ping(self, body: Any) -> tuple[int, Any]:
        return 200, {
            "build_version": "stand-in",
            "version": "v0.0.0-standin",
            "pid": os.getpid(),
            "features": [],
        }

    def do_vmm_shutdown(self, body: Any) -> tuple[int, Any]:
        self._stop_guest()
        self.exit_requested.set()
        return 204, None

    # -- the VM ---------------------------------------------------------------

    def do_vm_create(self, config: dict[str, Any]) -> tuple[int, Any]:
        if self.config is not None:
            raise ApiFailure(
                500, "Error from API", "The VM could not be created", "VM is already created"
            )
        if config.get("fs") and not config.get("memory", {}).get("shared"):
            raise ApiFailure(
                400,
                "Error from API",
                "The VM configuration is not valid",
                "Using vhost-user requires using shared memory or huge pages",
            )
        self.config = config
        return 204, None

    def do_vm_boot(self, body: Any) -> tuple[int, Any]:
        if self.config is None:
            raise not_created("boot")
        if self.guest is not None:
            raise ApiFailure(500, "Error from API", "The VM could not boot", "VM is already booted")
        self.guest = Guest(self.config, self.agent_after, self.fake_agent)
        return 204, None

    def _running(self, action: str) -> Guest:
        if self.guest is None:
            raise not_running(action)
        return self.guest

    def _transition(self, action: str, before: str, after: str) -> tuple[int, Any]:
        guest = self._running(action)
        if guest.state != before:
            raise ApiFailure(
                500,
                "Error from API",
                f"The VM could not {action}",
                f"Invalid transition from {guest.state} to {after}",
            )
        guest.state = after
        return 204, None

    def do_vm_pause(self, body: Any) -> tuple[int, Any]:
        return self._transition("pause", "Running", "Paused")

    def do_vm_resume(self, body: Any) -> tuple[int, Any]:
        return self._transition("resume", "Paused", "Running")

    def do_vm_shutdown(self, body: Any) -> tuple[int, Any]:
        self._running("shut down")
        self._stop_guest()
        return 204, None

    def _stop_guest(self) -> None:
        if self.guest is not None:
            self.guest.stop()
            self.guest = None

    def do_vm_reboot(self, body: Any) -> tuple[int, Any]:
        if self.config is None or self.guest is None:
            raise not_created("reboot")
        return 204, None

    def do_vm_power_button(self, body: Any) -> tuple[int, Any]:
        guest = self._running("power off")
        if self.guest_powers_off and guest.state == "Running":
            # The guest powers off and Cloud Hypervisor exits with it.
            self._stop_guest()
            self.exit_requested.set()
        return 204, None

    def do_vm_delete(self, body: Any) -> tuple[int, Any]:
        self._stop_guest()
        self.config = None
        return 204, None

    def do_vm_nmi(self, body: Any) -> tuple[int, Any]:
        self._running("inject an NMI")
        return 204, None

    def do_vm_info(self, body: Any) -> tuple[int, Any]:
        if self.config is None:
            raise not_created("report its information")
        state = self.guest.state if self.guest else "Created"
        return 200, {
            "config": self.config,
            "state": state,
            "memory_actual_size": self.config.get("memory", {}).get("size", 0),
            "device_tree": {},
        }

    def do_vm_counters(self, body: Any) -> tuple[int, Any]:
        self._running("report counters")
        return 200, {}

    # -- sizing ---------------------------------------------------------------

    def do_vm_resize(self, body: dict[str, Any]) -> tuple[int, Any]:
        if self.config is None:
            raise not_created("be resized")
        if "desired_vcpus" in body:
            self.config.setdefault("cpus", {})["boot_vcpus"] = body["desired_vcpus"]
        if "desired_ram" in body:
            self.config.setdefault("memory", {})["size"] = body["desired_ram"]
        return 204, None

    def do_vm_resize_disk(self, body: dict[str, Any]) -> tuple[int, Any]:
        self._device("resize the disk", "disks", body.get("id"))
        return 204, None

    def do_vm_resize_zone(self, body: dict[str, Any]) -> tuple[int, Any]:
        if self.config is None:
            raise not_created("resize the memory zone")
        zones = self.config.get("memory", {}).get("zones", [])
        if not any(zone["id"] == body.get("id") for zone in zones):
            raise ApiFailure(404, "Error from API", "Unknown memory zone")
        return 204, None

    # -- devices --------------------------------------------------------------

    def _all_ids(self) -> set[str]:
        assert self.config is not None
        ids = {d.get("id") for key, _ in DEVICE_LISTS.values() for d in self.config.get(key, [])}
        if "vsock" in self.config:
            ids.add(self.config["vsock"].get("id"))
        return {i for i in ids if i}

    def _device(self, action: str, key: str, device_id: str | None) -> dict[str, Any]:
        if self.config is None:
            raise not_created(action)
        for device in self.config.get(key, []):
            if device.get("id") == device_id:
                return device
        raise ApiFailure(
            404, "Error from API", f"The VM could not {action}", f"No device with id {device_id}"
        )

    def _add(self, endpoint: str, device: dict[str, Any]) -> tuple[int, Any]:
        if self.config is None:
            raise not_created("add a device")
        ids = self._all_ids()
        key, prefix = DEVICE_LISTS.get(endpoint, ("vsock", "_vsock"))
        if device.get("id") in ids:
            raise ApiFailure(
                409,
                "Error from API",
                "The device could not be added",
                f"Identifier {device['id']} is not unique",
            )
        if key == "vsock" and "vsock" in self.config:
            raise ApiFailure(
                500,
                "Error from API",
                "The device could not be added",
                "Only one vsock device is supported",
            )
        device = dict(device)
        device.setdefault("id", f"{prefix}{len(ids)}")
        if self.guest is not None:  # hot-plug: the VMM opens it now
            if key == "disks":
                Guest.open_disk(device)
            elif key == "fs":
                self.guest.connect_fs(device)
            elif key == "net":
                Guest.open_tap(device)
        if key == "vsock":
            self.config["vsock"] = device
        else:
            self.config.setdefault(key, []).append(device)
        if self.guest is None:
            return 204, None  # cold-added: part of the config for the next boot
        return 200, {"id": device["id"], "bdf": f"0000:00:{len(ids) + 6:02x}.0"}

    def do_vm_remove_device(self, body: dict[str, Any]) -> tuple[int, Any]:
        if self.config is None:
            raise not_created("remove the device")
        for key, _ in DEVICE_LISTS.values():
            devices = self.config.get(key, [])
            kept = [d for d in devices if d.get("id") != body.get("id")]
            if len(kept) != len(devices):
                self.config[key] = kept
                return 204, None
        raise ApiFailure(
            404,
            "Error from API",
            "The device could not be removed",
            f"No device with id {body.get('id')}",
        )

    # -- snapshots and migration ----------------------------------------------

    def do_vm_snapshot(self, body: dict[str, Any]) -> tuple[int, Any]:
        guest = self._running("be snapshotted")
        if guest.state != "Paused":
            raise ApiFailure(
                500, "Error from API", "The VM could not be snapshotted", "VM is not paused"
            )
        assert self.config is not None
        directory = _snapshot_dir(body["destination_url"], "snapshotted")
        memory = self.config["memory"]["size"]
        state = {
            "vcpus": self.config["cpus"]["boot_vcpus"],
            "devices": _device_ids(self.config),
            "memory_ranges": [{"gpa": 0, "length": memory}],
            "agent_listening": guest.agent_refusals_left <= 0,
        }
        contents = (
            (SNAPSHOT_CONFIG, json.dumps(self.config).encode()),
            (SNAPSHOT_STATE, json.dumps(state).encode()),
            (SNAPSHOT_MEMORY, RAM_MARKER),
        )
        for name, data in contents:
            try:  # created anew, as the real one does (O_EXCL)
                with open(directory / name, "xb") as f:
                    f.write(data)
            except OSError as e:
                raise ApiFailure(
                    500,
                    "Error from API",
                    "The VM could not be snapshotted",
                    f"Error creating VM snapshot file {name}: {e.strerror}",
                ) from None
        os.truncate(directory / SNAPSHOT_MEMORY, memory)  # sparse: RAM never touched
        return 204, None

    def do_vm_coredump(self, body: dict[str, Any]) -> tuple[int, Any]:
        self._running("be coredumped")
        return 204, None

    def do_vm_restore(self, body: dict[str, Any]) -> tuple[int, Any]:
        if self.config is not None:
            raise ApiFailure(
                500, "Error from API", "The VM could not be restored", "VM is already created"
            )
        on_demand = body.get("memory_restore_mode") == "OnDemand"
        if on_demand and body.get("prefault"):
            raise ApiFailure(
                400,
                "Error from API",
                "The VM could not be restored",
                "'prefault' cannot be combined with 'memory_restore_mode=ondemand'",
            )
        directory = _snapshot_dir(body["source_url"], "restored")
        config = self._snapshot_config(directory)
        state = _snapshot_state(directory)
        _check_memory_ranges(directory, state)
        failure = _mismatch(config, state)
        if on_demand and not self.userfaultfd and not failure:
            failure = "UFFD restore: creating a userfaultfd failed: Operation not permitted"
        if failure:
            raise ApiFailure(500, "Error from API", "The VM could not be restored", failure)
        agent_after = 0 if state.get("agent_listening") else self.agent_after
        self.guest = Guest(config, agent_after, self.fake_agent)
        self.config = config
        self.guest.state = "Running" if body.get("resume") else "Paused"
        return 204, None

    def _snapshot_config(self, directory: Path) -> dict[str, Any]:
        """config.json as the real one deserialises it: a VmConfig, or the restore fails."""
        try:
            config = json.loads((directory / SNAPSHOT_CONFIG).read_text())
        except (OSError, ValueError) as e:
            raise ApiFailure(
                500,
                "Error from API",
                "The VM could not be restored",
                f"Error opening VM config snapshot file: {e}",
            ) from None
        errors = self.spec.errors("VmConfig", config)
        if errors:
            raise ApiFailure(
                500,
                "Error from API",
                "The VM could not be restored",
                "Error deserialising VM config snapshot",
                *errors,
            )
        return config

    def do_vm_send_migration(self, body: dict[str, Any]) -> tuple[int, Any]:
        raise ApiFailure(
            500,
            "Error from API",
            "The VM could not be migrated",
            "live migration is not part of the stand-in",
        )

    def do_vm_receive_migration(self, body: dict[str, Any]) -> tuple[int, Any]:
        raise ApiFailure(
            500,
            "Error from API",
            "The VM could not receive a migration",
            "live migration is not part of the stand-in",
        )


def _snapshot_dir(url: str, action: str) -> Path:
    if not url.startswith("file://"):
        raise ApiFailure(
            500,
            "Error from API",
            f"The VM could not be {action}",
            f"Could not extract path from URL: {url}",
        )
    directory = Path(url.removeprefix("file://"))
    if not directory.is_dir():
        raise ApiFailure(
            500,
            "Error from API",
            f"The VM could not be {action}",
            f"Destination is not a directory: {directory}",
        )
    return directory


def _snapshot_state(directory: Path) -> dict[str, Any]:
    try:
        state = json.loads((directory / SNAPSHOT_STATE).read_text())
        ranges = [(int(r["gpa"]), int(r["length"])) for r in state["memory_ranges"]]
        if not isinstance(state["devices"], list):
            raise TypeError("devices is not a list")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ApiFailure(
            500,
            "Error from API",
            "The VM could not be restored",
            f"Error deserialising VM state snapshot: {e}",
        ) from None
    state["ranges"] = ranges
    return state


def _check_memory_ranges(directory: Path, state: dict[str, Any]) -> None:
    """The guest RAM is read from memory-ranges, range after range: it must hold them."""
    needed = sum(length for _, length in state["ranges"])
    try:
        with open(directory / SNAPSHOT_MEMORY, "rb") as memory:  # read only, as the VMM
            size = os.fstat(memory.fileno()).st_size
    except OSError as e:
        raise ApiFailure(
            500,
            "Error from API",
            "The VM could not be restored",
            f"Error opening the memory snapshot: {e.strerror}",
        ) from None
    if size < needed:
        raise ApiFailure(
            500,
            "Error from API",
            "The VM could not be restored",
            f"Error filling guest memory: {SNAPSHOT_MEMORY} holds {size} of {needed} bytes",
        )


def _device_ids(config: dict[str, Any]) -> list[str]:
    ids = [
        f"{key}:{device.get('id')}"
        for key, _ in DEVICE_LISTS.values()
        for device in config.get(key) or []
    ]
    return sorted(ids + (["vsock"] if "vsock" in config else []))


def _mismatch(config: dict[str, Any], state: dict[str, Any]) -> str | None:
    """Why the snapshot's state cannot be that of a VM with this config, or None."""
    unknown = sorted(set(_device_ids(config)) ^ set(state["devices"]))
    if unknown:
        return f"Missing or unexpected device state for {', '.join(unknown)}"
    if config["memory"]["size"] != sum(length for _, length in state["ranges"]):
        return "The memory size does not match the memory snapshot"
    if config["cpus"]["boot_vcpus"] != state["vcpus"]:
        return "The vCPU count does not match the CPU snapshot"
    if config.get("fs") and not config["memory"].get("shared"):
        return "vhost-user-fs: guest memory is not shared, the back-end cannot map it"
    return None


for _endpoint in [*DEVICE_LISTS, "vm.add-vsock"]:

    def _adder(self: Vmm, body: Any, endpoint: str = _endpoint) -> tuple[int, Any]:
        return self._add(endpoint, body)

    setattr(Vmm, "do_" + _endpoint.replace(".", "_").replace("-", "_"), _adder)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def do_GET(self) -> None:
        self._serve("GET")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the journal records requests

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        route = self.path.removeprefix(API_ROOT)
        status, answer, schema_errors = self.server.respond(method, route, raw)
        self.server.record(method, route, raw, status, schema_errors)
        payload = b"" if answer is None else json.dumps(answer).encode()
        try:
            self.send_response(status)
            self.send_header("Server", "Cloud Hypervisor API")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()
        finally:  # a client gone before the answer was written must not keep us alive
            if self.server.vmm.exit_requested.is_set():
                self.server.exiting()


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path, vmm: Vmm, journal: Path | None) -> None:
        path.unlink(missing_ok=True)
        super().__init__(str(path), Handler)
        self.path = path
        self.vmm = vmm
        self.journal = journal
        self._journal_lock = threading.Lock()

    def respond(self, method: str, route: str, raw: bytes) -> tuple[int, Any, list[str]]:
        operation = self.vmm.spec.operations.get((method, route))
        if operation is None:
            if route in self.vmm.spec.paths:
                return 400, None, []  # a known path with the wrong method
            return 404, ["Not Found"], []
        body: Any = None
        if operation.body_schema:
            if not raw:
                return 400, ["Bad Request"], []
            try:
                body = json.loads(raw)
            except ValueError as e:
                return 400, ["Failed to deserialize JSON", str(e)], []
            errors = self.vmm.spec.errors(operation.body_schema, body)
            if errors:
                return 400, ["Failed to deserialize JSON", *errors], errors
        try:
            status, answer = self.vmm.handle(route.lstrip("/"), body)
        except ApiFailure as failure:
            return failure.status, failure.messages, []
        return status, answer, []

    def record(self, method: str, route: str, raw: bytes, status: int, errors: list[str]) -> None:
        if self.journal is None:
            return
        entry = {
            "method": method,
            "path": route,
            "status": status,
            "body": raw.decode(errors="replace") or None,
            "schema_errors": errors,
        }
        with self._journal_lock, open(self.journal, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def exiting(self) -> None:
        # Like Cloud Hypervisor, remove the API socket, then exit.
        self.path.unlink(missing_ok=True)
        os._exit(0)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cloud-hypervisor (stand-in)")
    parser.add_argument("--version", action="version", version=VERSION)
    parser.add_argument("--journal", type=Path)
    parser.add_argument("--agent-after", type=int, default=0)
    parser.add_argument("--fake-agent", action="store_true")
    parser.add_argument("--guest-powers-off", action="store_true")
    parser.add_argument("--no-userfaultfd", action="store_true")
    parser.add_argument("--api-socket", required=True, help="path=<socket>")
    args = parser.parse_args(argv)
    options = dict(part.split("=", 1) for part in args.api_socket.split(",") if "=" in part)
    if "path" not in options:
        parser.error("--api-socket: path=<socket> is required")
    args.api_path = Path(options["path"])
    return args


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    vmm = Vmm(Spec(), args)
    server = Server(args.api_path, vmm, args.journal)
    print(f"cloud-hypervisor stand-in: API on {args.api_path}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])

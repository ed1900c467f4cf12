"""The three kinds of driver, their interfaces, and how one is chosen.

Exactly one driver of each kind is active, named by the configuration and
loaded with stevedore from an entry-point group. A driver declares what it
can do (`capabilities`) and what it needs from the others (`requires`), so
the core can refuse an impossible combination before it starts anything.

Network and hypervisor drivers never know each other: a network driver
describes the pod's interface as a `NetworkAttachment`; a hypervisor driver
attaches whatever that description says.
"""

from __future__ import annotations

import abc
import builtins
import socket
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, overload

from .driver_settings import DriverSettings, HypervisorSettings, settings_of
from .errors import UserError

if TYPE_CHECKING:
    from .config import Config

HYPERVISORS = "hypercontainer.hypervisors"
IMAGES = "hypercontainer.images"
NETWORKS = "hypercontainer.network"
KINDS = {"hypervisor": HYPERVISORS, "images": IMAGES, "network": NETWORKS}


class Cap:
    """Capability names shared by drivers of different kinds."""

    PAUSE = "pause"  # hypervisor can pause and resume a VM
    USER_NETWORK = "user-network"  # hypervisor has built-in user-mode networking
    TAP_NETWORK = "tap-network"  # hypervisor attaches a host tap device
    HOST_FORWARDS = "host-forwards"  # hypervisor forwards host ports (user-mode)
    NETNS_TAP = "netns-tap"  # hypervisor takes a tap living in another network namespace
    SHARE_9P = "share-9p"  # hypervisor exports host directories with 9p
    SHARE_VIRTIOFS = "share-virtiofs"
    ROOT = "root"  # driver needs to run as root


# -- what a network driver hands to a hypervisor driver ----------------------


@dataclass(frozen=True)
class PortForward:
    protocol: str  # "tcp" | "udp"
    host_ip: str
    host_port: int
    guest_port: int

    def __str__(self) -> str:
        return f"{self.host_ip}:{self.host_port}->{self.guest_port}/{self.protocol}"


@dataclass
class NetworkAttachment:
    """The pod's one network interface, as the guest and the VMM must see it."""

    kind: str  # "none" | "user" | "tap"
    mac: str = ""
    tap: str | None = None  # host tap device name, for kind "tap"
    address: str | None = None  # guest address with prefix, e.g. "10.0.2.15/24"
    gateway: str | None = None
    dns: list[str] = field(default_factory=list)
    # For kind "user": forwards the hypervisor sets up itself. For kind "tap"
    # the network driver implements port mappings (e.g. DNAT) and leaves this empty.
    forwards: list[PortForward] = field(default_factory=list)
    requires: frozenset[str] = frozenset()  # hypervisor capabilities needed
    # A tap inside another network namespace (core/netjoin.py): its path, and the
    # interface there whose traffic the tap mirrors.
    netns: str | None = None
    interface: str | None = None
    # What the guest's interface takes over beyond `address` and `gateway`:
    # every address ("a.b.c.d/len" or IPv6), routes ({"dst": CIDR, "gateway": IP?}), MTU.
    addresses: list[str] = field(default_factory=list)
    routes: list[dict[str, str]] = field(default_factory=list)
    mtu: int | None = None

    def guest_interface(self) -> dict[str, Any] | None:
        """The interface as the guest agent's start_pod request describes it."""
        if self.kind == "none":
            return None
        interface: dict[str, Any] = {
            "mac": self.mac,
            "address": self.address,
            "gateway": self.gateway,
        }
        if self.addresses:
            interface["addresses"] = list(self.addresses)
        if self.routes:
            interface["routes"] = [dict(route) for route in self.routes]
        if self.mtu:
            interface["mtu"] = self.mtu
        return interface

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["forwards"] = [f.__dict__ for f in self.forwards]
        data["requires"] = sorted(self.requires)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkAttachment:
        data = dict(data)
        data["forwards"] = [PortForward(**f) for f in data.get("forwards", [])]
        data["requires"] = frozenset(data.get("requires", []))
        return cls(**data)


# -- what the runtime hands to a hypervisor driver ---------------------------


@dataclass(frozen=True)
class Share:
    """A host directory exported to the guest under a tag."""

    tag: str
    host_path: Path
    readonly: bool = True
    mounts_below: bool = False  # other file systems get mounted below it while the VM runs


@dataclass
class VMSpec:
    pod_id: str
    vm_name: str
    vcpus: int
    memory_mb: int
    kernel: Path
    initrd: Path
    kernel_args: list[str]
    run_dir: Path  # private per-pod directory for sockets and pid files
    console_log: Path
    shares: list[Share] = field(default_factory=list)
    network: NetworkAttachment | None = None


# A VM handle is a JSON-serialisable dict a hypervisor driver returns from
# start(); the store keeps it so that a restarted daemon can adopt the VM.
VMHandle = dict[str, Any]


class Driver(abc.ABC):
    """Common shape: constructed with the configuration, described by name.

    A driver's own settings are the configuration's table named after it, checked by
    its `Settings` model (driver_settings.py) and found in `self.settings`.
    """

    name: ClassVar[str]
    capabilities: ClassVar[frozenset[str]] = frozenset()
    requires: ClassVar[frozenset[str]] = frozenset()  # e.g. {Cap.ROOT}
    Settings: ClassVar[type[DriverSettings]] = DriverSettings

    def __init__(self, config: Config) -> None:
        self.config = config
        self.settings = settings_of(config, self.name, self.Settings)

    def describe(self) -> dict[str, Any]:
        """What `hyperctl info` shows about this driver."""
        return {"name": self.name, "capabilities": sorted(self.capabilities)}


class Hypervisor(Driver):
    """Runs one VM per pod and connects the host to its guest agent."""

    Settings: ClassVar[type[HypervisorSettings]] = HypervisorSettings
    settings: HypervisorSettings

    @abc.abstractmethod
    def check(self) -> None:
        """Raise UserError if this hypervisor cannot run here (binary missing...)."""

    @abc.abstractmethod
    def start(self, spec: VMSpec) -> VMHandle:
        """Boot the VM; returns once the VMM runs. Cleans up itself on failure."""

    @abc.abstractmethod
    def connect_agent(self, handle: VMHandle, timeout: float) -> socket.socket:
        """A connected byte stream to the guest agent (a new one per call)."""

    @abc.abstractmethod
    def is_running(self, handle: VMHandle) -> bool:
        """Whether the VMM process of this handle is still alive."""

    @abc.abstractmethod
    def stop(self, handle: VMHandle, timeout: float) -> None:
        """Power the VM off, gracefully first, forcefully after `timeout`."""

    @abc.abstractmethod
    def cleanup(self, handle: VMHandle) -> None:
        """Remove everything start() created (sockets, files); the VM is gone."""

    def restore(self, spec: VMSpec) -> VMHandle | None:
        """Start the VM from a template of its shape instead of booting it, making the
        template first if there is none (concurrent first uses make it once).

        None: no template for this shape (templates are off, or this driver or shape
        cannot have one): the caller boots the VM with start(). Raises HyperError if
        the restore failed; the template is then dropped and the caller boots cold.
        """
        return None

    def discard_template(self, handle: VMHandle) -> None:
        """The VM restored as `handle` does not work (its agent never answered): drop
        the template it came from, so the next start of its shape makes a new one."""

    def templates(self) -> list[dict[str, Any]]:
        """The templates this driver keeps, for `hyperctl info`: shape, size, age, hits."""
        return []

    def recover(self) -> None:
        """hyperd is starting: clear what a killed daemon left of work it had begun and
        that belongs to no pod (e.g. a template being made). Nothing by default."""

    def reap(self, run_dir: Path) -> None:
        """Kill and clean up any VMM this driver started with `run_dir`.

        Used after a daemon crash, when no handle may have been recorded: the
        driver must find its VMM from files in `run_dir` (e.g. a pid file).
        """

    def watch(self, handle: VMHandle, on_exit: Callable[[], None]) -> None:
        """Call on_exit (from any thread) when the VM dies; default: nothing.

        The runtime also notices a dead VM by its agent stream closing.
        """

    def pause(self, handle: VMHandle) -> None:
        raise UserError(f"hypervisor {self.name} cannot pause a VM")

    def resume(self, handle: VMHandle) -> None:
        raise UserError(f"hypervisor {self.name} cannot resume a VM")

    def add_forward(self, handle: VMHandle, forward: PortForward) -> None:
        raise UserError(f"hypervisor {self.name} cannot forward host ports")

    def remove_forward(self, handle: VMHandle, forward: PortForward) -> None:
        raise UserError(f"hypervisor {self.name} cannot forward host ports")

    def add_share(self, handle: VMHandle, share: Share) -> None:
        """Export one more host directory to a running VM, found by the guest by its tag."""
        raise UserError(f"hypervisor {self.name} cannot add a share to a running VM")


class Network(Driver):
    """Gives a pod its network interface and port mappings."""

    @abc.abstractmethod
    def attach(self, pod_id: str, forwards: list[PortForward]) -> NetworkAttachment:
        """Allocate the pod's interface (and host side, e.g. a tap). Idempotent per pod:
        attaching a pod again (a start cut short) repeats or replaces its interface."""

    @abc.abstractmethod
    def detach(self, pod_id: str, attachment: NetworkAttachment) -> None:
        """Release everything attach() allocated. Must tolerate partial state."""

    def adopt(self, pod_id: str, attachment: NetworkAttachment) -> None:
        """Re-establish host state for a pod adopted after a daemon restart."""

    def recover(self, attached: Collection[str]) -> None:
        """hyperd is starting and has adopted its pods; `attached` are the pods whose
        attachment it holds. Release what this driver allocated for any other pod (an
        attach that a killed hyperd never recorded). Nothing to do by default."""

    def add_forward(
        self, pod_id: str, attachment: NetworkAttachment, fwd: PortForward
    ) -> PortForward | None:
        """Add a port mapping on a running pod (kind "tap"); user-mode goes to the VMM.

        Returns the forward as applied (an empty host_ip replaced by the default).
        """

    def remove_forward(
        self, pod_id: str, attachment: NetworkAttachment, fwd: PortForward
    ) -> PortForward | None:
        """Remove a port mapping from a running pod; returns the forward removed."""

    def forwards(self, pod_id: str, attachment: NetworkAttachment) -> list[PortForward]:
        """The port mappings in effect for a pod (for `hyperctl ports ls`)."""
        return list(attachment.forwards)


@dataclass
class ImageConfig:
    """The parts of an OCI image configuration a container needs."""

    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    working_dir: str = ""
    user: str = ""
    exposed_ports: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str = ""


@dataclass
class ResolvedImage:
    """A locally present image, ready to become a container's root filesystem."""

    id: str  # "sha256:<hex>" of the image config
    reference: str  # normalised, e.g. docker.io/library/busybox:latest
    layers: list[str]  # directories relative to Images.layers_root(), bottom first
    config: ImageConfig
    # Layer (as in `layers`) -> its opaque directories, relative to the layer root.
    opaque_dirs: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class ImageSummary:
    repository: str
    tag: str
    id: str
    created: str  # RFC 3339, may be ""
    size: int  # bytes, unpacked


@dataclass
class PushedImage:
    reference: str  # where it went, normalised, e.g. registry:5000/team/app:1.0
    digest: str  # the manifest's digest: `reference`'s name @ digest pulls it back


ProgressCallback = Callable[[dict[str, Any]], None]


class Images(Driver):
    """Pulls images and keeps their unpacked layers in a local store."""

    @abc.abstractmethod
    def layers_root(self) -> Path:
        """Host directory holding every unpacked layer; shared read-only to guests."""

    @abc.abstractmethod
    def resolve(self, reference: str) -> ResolvedImage:
        """A local image by reference or id (prefix); NotFound if absent."""

    @abc.abstractmethod
    def pull(self, reference: str, progress: ProgressCallback | None = None) -> ResolvedImage:
        """Fetch an image from its registry into the store."""

    @abc.abstractmethod
    def list(self) -> list[ImageSummary]: ...

    @abc.abstractmethod
    def remove(
        self, reference: str, in_use: Iterable[str] = (), force: bool = False
    ) -> builtins.list[str]:  # `list` is a verb here
        """Untag/delete; refuse if its id is in `in_use` unless force. Returns what was removed."""

    @abc.abstractmethod
    def load(self, archive: Path) -> builtins.list[str]:
        """Import an OCI archive or docker-archive tarball; returns references loaded."""

    @abc.abstractmethod
    def save(self, references: builtins.list[str], archive: Path) -> None:
        """Write images to an OCI archive."""

    @abc.abstractmethod
    def login(self, registry: str, username: str, password: str) -> None:
        """Check credentials against the registry and store them (mode 0600)."""

    # Optional verbs: a driver that cannot do them refuses with a user error.

    def logout(self, registry: str) -> str:
        """Forget what `login` stored for `registry`; returns what was done, for the user."""
        raise UserError(f"the {self.name} images driver has no logout")

    def tag(self, source: str, target: str) -> str:
        """Name the local image `source` also `target`; returns the normalised name."""
        raise UserError(f"the {self.name} images driver cannot tag images")

    def push(
        self,
        reference: str,
        destination: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> PushedImage:
        """Upload a local image to `destination` (default: its own name)."""
        raise UserError(f"the {self.name} images driver cannot push images")

    def recover(self) -> None:
        """hyperd is starting and no pull or load runs: clear what a daemon killed in
        the middle of one left half-written. Nothing to do by default."""


# -- choosing a driver -------------------------------------------------------


INTERFACES: dict[str, type[Driver]] = {
    "hypervisor": Hypervisor,
    "images": Images,
    "network": Network,
}


def installed(kind: str) -> list[str]:
    """Names of the installed drivers of one kind ("hypervisor", "images", "network")."""
    from importlib.metadata import entry_points

    return sorted({ep.name for ep in entry_points(group=KINDS[kind])})


@overload
def load(kind: Literal["hypervisor"], name: str, config: Config) -> Hypervisor: ...


@overload
def load(kind: Literal["images"], name: str, config: Config) -> Images: ...


@overload
def load(kind: Literal["network"], name: str, config: Config) -> Network: ...


@overload
def load(kind: str, name: str, config: Config) -> Driver: ...


def load(kind: str, name: str, config: Config) -> Driver:
    """The driver `name` of `kind`, constructed with the configuration; it must be of its
    kind's interface, whoever registered the entry point."""
    interface = INTERFACES[kind]
    from stevedore import DriverManager
    from stevedore.exception import NoMatches

    names = installed(kind)
    if name not in names:
        raise UserError(f"no {kind} driver '{name}'; installed: {', '.join(names) or 'none'}")
    try:
        manager = DriverManager(
            KINDS[kind],
            name=name,
            invoke_on_load=True,
            invoke_args=(config,),
            on_load_failure_callback=_reraise,
        )
    except NoMatches:
        raise UserError(f"no {kind} driver '{name}'; installed: {', '.join(names)}") from None
    driver = manager.driver
    if not isinstance(driver, interface):
        raise UserError(
            f"{kind} driver '{name}' is a {type(driver).__name__}, not a "
            f"hypercontainer.drivers.{interface.__name__}"
        )
    return driver


def _reraise(manager, entrypoint, exception) -> None:
    if isinstance(exception, UserError):
        raise exception
    raise UserError(f"{entrypoint.name}: driver failed to load: {exception}") from exception


def check_combination(hypervisor: Hypervisor, network: Network, attachment_requires=()) -> None:
    """Refuse, before anything starts, drivers that cannot work together."""
    import os

    for driver in (hypervisor, network):
        if Cap.ROOT in driver.requires and os.geteuid() != 0:
            raise UserError(f"the {driver.name} driver needs root")
    missing = (set(network.requires) | set(attachment_requires)) - {Cap.ROOT}
    missing -= hypervisor.capabilities
    if missing:
        raise UserError(
            f"hypervisor {hypervisor.name} cannot serve network {network.name}: "
            f"it lacks {', '.join(sorted(missing))}"
        )

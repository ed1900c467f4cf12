"""The pod file: what a user writes to describe a pod.

The format is the original HyperContainer's (hyperhq/hyperd `UserPod`): the
wire names are its camelCase keys (`restartPolicy`, `containerPort`, ...),
the Python attributes are snake_case. Parsing text, case-insensitive keys and
one-line error messages live in `specload`; this module is the models and the
rules a pod file must obey, so a `PodSpec` that exists is safe to act on.

Decisions where the original was vague or unsafe:

- `files[].uri`: the original daemon fetched it (a host file or a URL) as
  root, so any pod file could read any host file. Here a validated `PodSpec`
  never holds a URI: hyperctl inlines `file://` and `http(s)://` URIs into
  `content` on the client, with the user's own rights (`specload`, given a
  `base_dir`; core/fetch.py); other schemes are refused, and hyperd refuses
  any URI left in a spec.
- Host paths appear only in a volume's `source`: access to the daemon's
  socket is root-equivalent, exactly like Docker's.
- `interfaces[]`: `ifname`, `ip` (CIDR), `mac`, `gateway` are accepted;
  `bridge` and `tap` are refused: host devices are the network driver's choice,
  not a pod file's.
- `services[]`: accepted and validated (unique ip:port@protocol); the runtime
  must refuse them if it cannot provide them.
- `log`: `type` is `json-file` (the default) or `none`; `config` takes
  `max-size` (e.g. `10m`) and `max-file` only.
- `files[].content` that is not valid base64: the bytes before the first bad
  group of four, as the original's Go decoder gave (its tests rely on it).
- `portmappingWhiteLists`, volume `option` (rbd) and `format: rbd` are refused
  as unsupported. A host port range must map onto a container range of the same
  length (the original also let a range map onto one port, picking a free one).
- Pod-level `tty` and `restartPolicy` (both in the original) are defaults for
  the containers that do not set their own. Container `ports` are merged into
  the pod's `portmappings`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from .specfields import (
    IP,
    MAX_ARG,
    MAX_ARGS,
    MAX_CONTAINERS,
    MAX_ENVS,
    MAX_FILE_BYTES,
    MAX_ITEMS,
    MAX_LABELS,
    MAX_MEMORY_MB,
    MAX_PATH,
    MAX_TOTAL_FILE_BYTES,
    MAX_VCPU,
    MIN_MEMORY_MB,
    ULIMITS,
    Arg,
    Cidr,
    ContainerPath,
    DnsOption,
    Domain,
    EnvName,
    Hostname,
    HostPath,
    Image,
    Labels,
    Loc,
    Mac,
    Name,
    Owner,
    Perm,
    Port,
    PortRange,
    Protocol,
    RefName,
    RestartPolicy,
    Signal,
    SpecError,
    SpecModel,
    SysctlKey,
    TmpfsOption,
    absolute_path,
    items,
    matching,
    one_of,
    port_bounds,
    render_loc,
    show,
    text,
)

# ---- containers ------------------------------------------------------------------


class EnvVar(SpecModel):
    env: EnvName
    value: Annotated[str, text(MAX_ARG)] = ""


class VolumeRef(SpecModel):
    """Mounts the pod volume named `volume` at `path` in the container."""

    volume: RefName
    path: ContainerPath
    read_only: bool = False


class FileRef(SpecModel):
    """Puts the pod file named `filename` at `path` in the container.

    A `path` ending in `/` is a directory: the file keeps its pod file name.
    """

    filename: RefName
    path: ContainerPath
    perm: Perm = "0755"  # the original's default
    user: Owner = ""
    group: Owner = ""

    @property
    def destination(self) -> str:
        return self.path + self.filename if self.path.endswith("/") else self.path

    @property
    def mode(self) -> int:
        return int(self.perm, 8)


class Bind(SpecModel):
    """A host file or directory mounted into the container (hypercontainer's own key,
    used by the containerd shim): it reaches the VM through the pod's share."""

    source: HostPath
    path: ContainerPath
    read_only: bool = False


class Tmpfs(SpecModel):
    """A fresh tmpfs at `path`, in the guest's memory, with mount options like size=64m."""

    path: ContainerPath
    options: list[TmpfsOption] = items(16)


class User(SpecModel):
    name: Owner = ""
    group: Owner = ""
    additional_groups: list[Owner] = items(64)


def _rlimit_name(value: str) -> str:
    return value.lower().removeprefix("rlimit_")


class Ulimit(SpecModel):
    name: Annotated[str, AfterValidator(_rlimit_name), one_of(*ULIMITS)]
    soft: Annotated[int, Field(ge=0, le=2**64 - 1)]
    hard: Annotated[int, Field(ge=0, le=2**64 - 1)]

    @model_validator(mode="after")
    def _soft_below_hard(self) -> Ulimit:
        if self.soft > self.hard:
            raise ValueError(f"soft limit {self.soft} exceeds hard limit {self.hard}")
        return self


class ContainerPort(SpecModel):
    """The original's per-container port form; merged into the pod's portmappings."""

    unsupported: ClassVar[Mapping[str, str]] = {
        "servicePort": "service ports belong in the pod's services",
        "name": "named ports are not supported",
    }
    container_port: Port
    host_port: Port
    protocol: Protocol = "tcp"


class Container(SpecModel):
    unsupported: ClassVar[Mapping[str, str]] = {
        "id": "container ids are assigned by hyperd",
        "logPath": "log files are placed by hyperd",
    }
    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["image"]}, {"required": ["rootfs"]}]}
    )
    name: Name | None = None  # None: the runtime names it
    # A host directory as the root filesystem instead of an image (containerd's snapshot).
    rootfs: HostPath | None = None
    image: Annotated[Image | None, Field(validate_default=True)] = None  # or a rootfs
    command: list[Arg] = items(MAX_ARGS)
    # None: the image's entrypoint; [] (given empty) clears it, as Docker's --entrypoint "".
    entrypoint: Annotated[list[Arg], Field(max_length=MAX_ARGS)] | None = None
    workdir: ContainerPath | None = None  # None: the image's
    envs: list[EnvVar] = items(MAX_ENVS)
    volumes: list[VolumeRef] = items()
    files: list[FileRef] = items()
    ports: list[ContainerPort] = Field(default_factory=list, max_length=MAX_ITEMS, exclude=True)
    tty: bool = False
    restart_policy: RestartPolicy = "never"
    user: User | None = None
    labels: Labels = Field(default_factory=dict)
    read_only: bool = False
    stop_signal: Signal | None = None  # None: SIGTERM
    sysctl: Annotated[dict[SysctlKey, str], Field(max_length=MAX_LABELS)] = Field(
        default_factory=dict
    )
    ulimits: list[Ulimit] = items(len(ULIMITS))
    binds: list[Bind] = items()
    tmpfs: list[Tmpfs] = items(64)

    @field_validator("image")
    @classmethod
    def _image_or_rootfs(cls, image: str | None, info: ValidationInfo) -> str | None:
        rootfs = info.data.get("rootfs")
        if image is None and rootfs is None:
            raise PydanticCustomError("missing", "field required")
        if image is not None and rootfs is not None:
            raise ValueError("a container runs from an image or a rootfs, not both")
        return image

    @property
    def origin(self) -> str:
        """What the container runs from, for names: its image, or its root directory."""
        return self.image or self.rootfs or ""

    def problems(self) -> Iterator[tuple[Loc, str]]:
        """Rules inside one container, as (location, reason)."""
        yield from _duplicates(self.envs, "envs", "env", "environment variable")
        yield from _duplicates(self.volumes, "volumes", "volume", "volume")
        yield from _duplicates(self.ulimits, "ulimits", "name", "ulimit")
        first: dict[str, tuple] = {}
        for field in ("volumes", "binds", "tmpfs"):
            for i, item in enumerate(getattr(self, field)):
                if item.path in first:
                    where = render_loc(first[item.path])
                    yield (field, i, "path"), f"mount path {show(item.path)} repeats {where}"
                first.setdefault(item.path, (field, i))


def _duplicates(items: list[Any], field: str, attr: str, what: str) -> Iterator[tuple[Loc, str]]:
    first: dict[Any, int] = {}
    for i, item in enumerate(items):
        key = getattr(item, attr)
        if not key:  # unnamed: the runtime names it
            continue
        if key in first:
            yield (field, i, to_camel(attr)), f"{what} {show(key)} repeats {field}[{first[key]}]"
        first.setdefault(key, i)


# ---- the pod ---------------------------------------------------------------------


class Resource(SpecModel):
    vcpu: Annotated[int, Field(ge=1, le=MAX_VCPU)] = 1
    memory: Annotated[int, Field(ge=MIN_MEMORY_MB, le=MAX_MEMORY_MB)] = 128  # MB


class Volume(SpecModel):
    """A pod volume. `format`: "" or vfs (a host directory or file, or an empty
    volume when `source` is empty), raw/qcow2/vdi (a disk image on the host),
    nas (an NFS export `host:/path`)."""

    unsupported: ClassVar[Mapping[str, str]] = {
        "option": "rbd volumes are not supported",
        "cache": "volume cache modes are not supported",
    }
    name: RefName
    source: Annotated[str, text(MAX_PATH)] = ""
    format: Annotated[str, one_of("", "vfs", "raw", "qcow2", "vdi", "nas", "rbd")] = ""
    fstype: Annotated[str, text(32), matching(r"[a-z0-9]*", "a filesystem type")] = ""
    read_only: bool = False

    @model_validator(mode="after")
    def _source_fits_format(self) -> Volume:
        if self.format == "rbd":
            raise ValueError("rbd volumes are not supported")
        if self.format == "nas":
            if not re.fullmatch(r"[A-Za-z0-9.\[\]:-]+:/[^\x00-\x1f]*", self.source, re.ASCII):
                raise ValueError(f"source {show(self.source)} is not an NFS export host:/path")
            return self
        if self.source:
            absolute_path(self.source)
            if not self.format:
                self.format = "vfs"
        elif self.format in ("raw", "qcow2", "vdi"):
            raise ValueError(f"a {self.format} volume needs a source image")
        return self

    @property
    def is_empty(self) -> bool:
        """A fresh volume made by the runtime, not backed by the host."""
        return not self.source


_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?", re.ASCII)


def _no_uri(value: str) -> str:
    if value:
        raise ValueError(
            "hyperd reads no URIs; hyperctl inlines file:// and http(s) URIs as content"
        )
    return value


class File(SpecModel):
    """Content put into containers by FileRef. `encoding` says how `content` is
    written: raw text or base64."""

    name: RefName
    encoding: Annotated[str, one_of("raw", "base64")] = "raw"
    uri: Annotated[str, text(MAX_PATH), AfterValidator(_no_uri)] = ""
    content: Annotated[str, text(MAX_FILE_BYTES * 4 // 3 + 4)] = ""

    @model_validator(mode="after")
    def _content_is_decodable(self) -> File:
        if len(self.data) > MAX_FILE_BYTES:
            raise ValueError(f"content is larger than {MAX_FILE_BYTES} bytes")
        return self

    @property
    def data(self) -> bytes:
        if self.encoding == "raw":
            return self.content.encode()
        return self.decoded()[0]

    def decoded(self) -> tuple[bytes, bool]:
        """The base64 content's bytes, and whether all of it was valid.

        Padded standard base64; line breaks are ignored, as Go's decoder does. Content
        that is not valid gives the bytes of the whole 4-character groups before the
        first bad one, as the original's Go decoder did: its own tests expect that of
        insert-file.pod's deliberately corrupt file (hyperctl warns about it).
        """
        text = self.content.replace("\r", "").replace("\n", "")
        if _BASE64.fullmatch(text):
            return base64.b64decode(text), True
        valid = _BASE64.match(text)  # whole groups of four, always
        return base64.b64decode(text[: valid.end() if valid else 0]), False


class PortMapping(SpecModel):
    """Host port(s) forwarded to container port(s): "80" or "3000-3010"."""

    container_port: PortRange
    host_port: PortRange
    protocol: Protocol = "tcp"
    # Not in the original (it listened where its network chose): the host address to
    # listen on; unset, the network driver's default (127.0.0.1 for `user`).
    host_ip: IP | None = None

    @model_validator(mode="after")
    def _same_length(self) -> PortMapping:
        if len(self.host_ports) != len(self.container_ports):
            raise ValueError(
                f"host ports {self.host_port} and container ports {self.container_port}"
                " differ in length"
            )
        return self

    @property
    def host_ports(self) -> range:
        first, last = port_bounds(self.host_port)
        return range(first, last + 1)

    @property
    def container_ports(self) -> range:
        first, last = port_bounds(self.container_port)
        return range(first, last + 1)


class Interface(SpecModel):
    unsupported: ClassVar[Mapping[str, str]] = {
        "bridge": "the host bridge is chosen by the network driver, not the pod file",
        "tap": "the host tap device is chosen by the network driver, not the pod file",
    }
    ifname: Annotated[str, text(15), matching(r"[A-Za-z0-9_.-]*", "an interface name")] = ""
    ip: Cidr | None = None
    mac: Mac | None = None
    gateway: IP | None = None


class ServiceBackend(SpecModel):
    host_ip: IP = Field(alias="hostIP")
    host_port: Port


class Service(SpecModel):
    """A virtual IP:port inside the pod, balanced over `hosts`."""

    service_ip: IP = Field(alias="serviceIP")
    service_port: Port
    protocol: Protocol = "tcp"
    hosts: list[ServiceBackend] = items(64)


def _size(value: str) -> str:
    if not re.fullmatch(r"[1-9][0-9]{0,9}[kmg]?", value, re.ASCII):
        raise ValueError(f"{show(value)} is not a size like 10m")
    return value


def _count(value: str) -> str:
    if not re.fullmatch(r"[1-9][0-9]{0,3}", value, re.ASCII):
        raise ValueError(f"{show(value)} is not a file count like 3")
    return value


class LogConfig(SpecModel):
    """Where container output goes: kept by hyperd (json-file) or dropped (none)."""

    type: Annotated[str, one_of("json-file", "none")] = "json-file"
    config: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_options(self) -> LogConfig:
        checks = {"max-size": _size, "max-file": _count}
        for key, value in self.config.items():
            if key not in checks:
                raise ValueError(f"log option {show(key)} is not one of max-size, max-file")
            checks[key](value)
        return self


class PodSpec(SpecModel):
    unsupported: ClassVar[Mapping[str, str]] = {
        "portmappingWhiteLists": "port mapping white lists are not supported",
    }
    id: Name | None = None  # None: the runtime names the pod
    hostname: Hostname | None = None
    containers: list[Container] = items(MAX_CONTAINERS)
    resource: Resource = Field(default_factory=Resource)
    volumes: list[Volume] = items()
    files: list[File] = items()
    portmappings: list[PortMapping] = items()
    dns: list[IP] = items(8)
    dns_search: list[Domain] = items(6)
    dns_options: list[DnsOption] = items(16)
    labels: Labels = Field(default_factory=dict)
    interfaces: list[Interface] = items(8)
    services: list[Service] = items(64)
    log: LogConfig = Field(default_factory=LogConfig)
    tty: bool = False  # default of the containers' tty
    restart_policy: RestartPolicy | None = None  # default of the containers' policy

    @model_validator(mode="after")
    def _consistent(self) -> PodSpec:
        for loc, reason in self.problems():
            raise SpecError(loc, reason)
        self._apply_pod_defaults()
        self._merge_container_ports()
        return self

    def problems(self) -> Iterator[tuple[Loc, str]]:
        """Rules across the pod, as (location, reason)."""
        yield from _duplicates(self.containers, "containers", "name", "container name")
        yield from _duplicates(self.volumes, "volumes", "name", "volume")
        yield from _duplicates(self.files, "files", "name", "file")
        yield from _duplicates(self.interfaces, "interfaces", "ifname", "interface")
        volumes = {v.name for v in self.volumes}
        files = {f.name for f in self.files}
        for i, container in enumerate(self.containers):
            for loc, reason in container.problems():
                yield ("containers", i, *loc), reason
            for j, ref in enumerate(container.volumes):
                if ref.volume not in volumes:
                    loc = ("containers", i, "volumes", j, "volume")
                    yield loc, f"no pod volume is named {show(ref.volume)}"
            for j, fref in enumerate(container.files):
                if fref.filename not in files:
                    loc = ("containers", i, "files", j, "filename")
                    yield loc, f"no pod file is named {show(fref.filename)}"
        yield from self._port_clashes()
        gateways = [i for i, nic in enumerate(self.interfaces) if nic.gateway]
        for i in gateways[1:]:
            reason = f"interfaces[{gateways[0]}] already sets the gateway"
            yield ("interfaces", i, "gateway"), reason
        seen: dict[tuple[str, int, str], int] = {}
        for i, svc in enumerate(self.services):
            key = (svc.service_ip, svc.service_port, svc.protocol)
            if key in seen:
                yield ("services", i), f"repeats services[{seen[key]}]"
            seen.setdefault(key, i)
        if sum(len(f.data) for f in self.files) > MAX_TOTAL_FILE_BYTES:
            yield ("files",), f"contents exceed {MAX_TOTAL_FILE_BYTES} bytes in total"

    def _all_port_mappings(self) -> Iterator[tuple[Loc, PortMapping]]:
        for i, mapping in enumerate(self.portmappings):
            yield ("portmappings", i), mapping
        for i, container in enumerate(self.containers):
            for j, port in enumerate(container.ports):
                mapping = PortMapping(
                    container_port=str(port.container_port),
                    host_port=str(port.host_port),
                    protocol=port.protocol,
                )
                yield ("containers", i, "ports", j), mapping

    def _port_clashes(self) -> Iterator[tuple[Loc, str]]:
        taken: list[tuple[Loc, PortMapping]] = []
        for loc, mapping in self._all_port_mappings():
            ports = mapping.host_ports
            for other_loc, other in taken:
                first = max(ports[0], other.host_ports[0])
                if other.protocol == mapping.protocol and first <= min(
                    ports[-1], other.host_ports[-1]
                ):
                    reason = f"host port {first}/{mapping.protocol} is already mapped by"
                    yield (*loc, "hostPort"), f"{reason} {render_loc(other_loc)}"
            taken.append((loc, mapping))

    def _apply_pod_defaults(self) -> None:
        for container in self.containers:
            if self.tty and "tty" not in container.model_fields_set:
                container.tty = True
            if self.restart_policy and "restart_policy" not in container.model_fields_set:
                container.restart_policy = self.restart_policy

    def _merge_container_ports(self) -> None:
        mappings = [m for loc, m in self._all_port_mappings() if loc[0] == "containers"]
        self.portmappings.extend(mappings)
        for container in self.containers:
            container.ports.clear()

    def with_container(self, container: Container) -> PodSpec:
        """This pod with one more container, checked against the rest (SpecError)."""
        data = normalised(self)
        data["containers"] = [c.model_copy(deep=True) for c in (*self.containers, container)]
        return PodSpec.model_validate(data)


def normalised(spec: PodSpec) -> dict[str, Any]:
    """The pod as canonical JSON-ready data: original key names, defaults filled."""
    return spec.model_dump(mode="json", by_alias=True, exclude_none=True)

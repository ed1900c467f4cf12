"""The qemu-system-x86_64 command line for a VMSpec.

Everything that ends up inside a QEMU option string (paths, names, tags) is
checked or escaped here: a comma in a path would otherwise start a new
option, and a pod name could smuggle in a whole device.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

from hypercontainer.drivers import NetworkAttachment, PortForward, Share, VMSpec
from hypercontainer.errors import UserError

AGENT_PORT = "hc.agent"  # the virtio-serial port name the guest agent looks for
AGENT_PORT_ID = "agent-port"  # its device id: QEMU names it in VSERPORT_CHANGE events
NETDEV = "net0"  # id of the pod's one network backend, for hostfwd_add/remove

_TAG = re.compile(r"^[A-Za-z0-9_.-]{1,31}$")  # QEMU caps 9p mount tags at 31 bytes
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")  # IFNAMSIZ - 1
_SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes, NUL included


@dataclass(frozen=True)
class RunFiles:
    """What QEMU creates in the pod's run directory."""

    run_dir: Path

    @property
    def agent_socket(self) -> Path:
        return self.run_dir / "agent.sock"

    @property
    def qmp_socket(self) -> Path:
        return self.run_dir / "qmp.sock"

    @property
    def pidfile(self) -> Path:
        return self.run_dir / "qemu.pid"

    def all(self) -> list[Path]:
        return [self.agent_socket, self.qmp_socket, self.pidfile]


def escape(value: object) -> str:
    """A value for a QEMU option string: commas are doubled, never separators."""
    return str(value).replace(",", ",,")


def hostfwd(forward: PortForward) -> str:
    """`tcp:127.0.0.1:8080-:80`, as -netdev user and hostfwd_add take it."""
    if forward.protocol not in ("tcp", "udp"):
        raise UserError(f"port mapping {forward}: protocol must be tcp or udp")
    try:
        address = ipaddress.IPv4Address(forward.host_ip)
    except ValueError:
        raise UserError(f"port mapping {forward}: host address must be IPv4") from None
    for port in (forward.host_port, forward.guest_port):
        if not isinstance(port, int) or not 1 <= port <= 65535:
            raise UserError(f"port mapping {forward}: port {port!r} out of range 1-65535")
    return f"{forward.protocol}:{address}:{forward.host_port}-:{forward.guest_port}"


def _share(index: int, share: Share) -> list[str]:
    if not _TAG.match(share.tag):
        raise UserError(f"share tag {share.tag!r}: 1-31 letters, digits, '_', '.' or '-'")
    if not Path(share.host_path).is_dir():
        raise UserError(f"share {share.tag}: {share.host_path} is not a directory")
    fsdev = f"fs{index}"
    options = f"local,id={fsdev},path={escape(share.host_path)},security_model=passthrough"
    if share.readonly:
        options += ",readonly=on"
    if share.mounts_below:  # distinct inode numbers across the file systems mounted below
        options += ",multidevs=remap"
    return ["-fsdev", options, "-device", f"virtio-9p-pci,fsdev={fsdev},mount_tag={share.tag}"]


@dataclass(frozen=True)
class Boot:
    """How the VM begins: booting its kernel, or as a template or a clone of one.

    A template guest's RAM lives on a shared file that outlives it; it starts paused
    (so the host listens before the guest runs) and with a tap placeholder (a hub
    port: a template holds no host tap). A clone maps that file privately, copy-on-
    write, and waits for its device state (`-incoming defer`, then migrate-incoming).
    """

    mode: str = "cold"  # "cold" | "template" | "clone"
    ram_file: Path | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("cold", "template", "clone"):
            raise ValueError(f"boot mode {self.mode!r}")
        if (self.mode == "cold") != (self.ram_file is None):
            raise ValueError("a template or clone needs its RAM file, a cold boot none")


COLD = Boot()


def _machine(spec: VMSpec, boot: Boot) -> list[str]:
    if boot.ram_file is None:
        return ["-machine", "pc"]
    shared = "on" if boot.mode == "template" else "off"
    ram = (
        f"memory-backend-file,id=pc.ram,size={spec.memory_mb}M,"
        f"mem-path={escape(boot.ram_file)},share={shared}"
    )
    return ["-object", ram, "-machine", "pc,memory-backend=pc.ram"]


def _network(network: NetworkAttachment | None, tap_fd: int | None, boot: Boot = COLD) -> list[str]:
    if network is None or network.kind == "none":
        return []
    if not _MAC.match(network.mac):
        raise UserError(f"network: {network.mac!r} is not a MAC address")
    device = ["-device", f"virtio-net-pci,netdev={NETDEV},mac={network.mac}"]
    if network.kind == "tap" and boot.mode == "template":
        return ["-netdev", f"hubport,id={NETDEV},hubid=0", *device]
    if network.kind == "user":
        backend = f"user,id={NETDEV}" + "".join(
            f",hostfwd={hostfwd(forward)}" for forward in network.forwards
        )
        return ["-netdev", backend, *device]
    if network.kind == "tap":
        if not network.tap or not _IFNAME.match(network.tap):
            raise UserError(f"network: {network.tap!r} is not a network interface name")
        if network.netns:  # QEMU cannot open a tap of another namespace: it inherits one
            if not isinstance(tap_fd, int) or tap_fd < 0:
                raise UserError(
                    f"network: tap {network.tap} in {network.netns} needs an open file descriptor"
                )
            return ["-netdev", f"tap,id={NETDEV},fd={tap_fd}", *device]
        return ["-netdev", f"tap,id={NETDEV},ifname={network.tap},script=no,downscript=no", *device]
    raise UserError(f"network kind {network.kind!r}: qemu attaches none, user or tap")


def _check_sizes(spec: VMSpec) -> None:
    if not isinstance(spec.vcpus, int) or not 1 <= spec.vcpus <= 255:
        raise UserError(f"vcpus {spec.vcpus!r}: must be 1-255")
    if not isinstance(spec.memory_mb, int) or not 64 <= spec.memory_mb <= 1024 * 1024:
        raise UserError(f"memory {spec.memory_mb!r} MB: must be 64 MB to 1 TB")


def accel_option(accelerator: str, tcg_cache_mb: int | None) -> str:
    """-accel's value. Under TCG the translation cache is a VM's biggest cost after its
    RAM (92 MiB of PSS by default here); 64 MiB saved 31 MiB per pod at no measured
    boot-time cost, 32 MiB saved more but slowed pod start (docs/benchmarks.md)."""
    if accelerator == "tcg" and tcg_cache_mb:
        return f"tcg,tb-size={tcg_cache_mb}"
    return accelerator


def build(
    spec: VMSpec,
    binary: str,
    accelerator: str,
    tcg_cache_mb: int | None = None,
    tap_fd: int | None = None,
    boot: Boot = COLD,
) -> list[str]:
    """The full argv; QEMU daemonizes once the VM is set up, leaving a pid file.

    `tap_fd`: the open tap of a network attachment in another namespace, passed to QEMU.
    Templates and their clones must have the same devices in the same order: every
    device is here whatever the mode, and only back-ends (paths, sockets, taps) differ.
    """
    _check_sizes(spec)
    files = RunFiles(spec.run_dir)
    if len(os.fsencode(files.agent_socket)) > _SOCKET_PATH_MAX:
        raise UserError(f"run directory {spec.run_dir} is too long for a unix socket path")
    cpu = ["-cpu", "host"] if accelerator == "kvm" else []
    argv = [
        binary,
        "-name",
        escape(spec.vm_name),
        *_machine(spec, boot),
        "-accel",
        accel_option(accelerator, tcg_cache_mb),
        *cpu,
        "-m",
        str(spec.memory_mb),
        "-smp",
        str(spec.vcpus),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-kernel",
        str(spec.kernel),
        "-initrd",
        str(spec.initrd),
        "-append",
        " ".join([*spec.kernel_args, "console=ttyS0"]),
        "-chardev",
        f"file,id=console,path={escape(spec.console_log)}",
        "-serial",
        "chardev:console",
        "-chardev",
        f"socket,id=qmp,path={escape(files.qmp_socket)},server=on,wait=off",
        "-mon",
        "chardev=qmp,mode=control",
        "-device",
        "virtio-serial-pci,id=agent-serial",
        "-chardev",
        f"socket,id=agent,path={escape(files.agent_socket)},server=on,wait=off",
        "-device",
        f"virtserialport,id={AGENT_PORT_ID},bus=agent-serial.0,chardev=agent,name={AGENT_PORT}",
        # A new generation id for every VM: a clone's kernel reseeds its random number
        # generator the moment it resumes, before any process reads from it.
        "-device",
        "vmgenid,guid=auto",
    ]
    tags = [share.tag for share in spec.shares]
    if len(set(tags)) != len(tags):
        raise UserError(f"share tags must be unique: {', '.join(tags)}")
    for index, share in enumerate(spec.shares):
        argv += _share(index, share)
    argv += _network(spec.network, tap_fd, boot)
    if boot.mode == "template":
        argv += ["-S"]
    elif boot.mode == "clone":
        argv += ["-incoming", "defer"]
    argv += ["-daemonize", "-pidfile", str(files.pidfile)]
    return argv

"""The requests the agent answers: arguments checked here, work done by the runtime."""

from __future__ import annotations

import os
import re

from . import machine, pod
from .args import Args
from .errors import Failure
from .log import timed
from .rootfs import LAYERS_TAG
from .runtime import Runtime

LAYER = re.compile(r"[A-Za-z0-9._@+=-]+(/[A-Za-z0-9._@+=-]+)*")
RLIMITS = {
    "AS",
    "CORE",
    "CPU",
    "DATA",
    "FSIZE",
    "LOCKS",
    "MEMLOCK",
    "MSGQUEUE",
    "NICE",
    "NOFILE",
    "NPROC",
    "RSS",
    "RTPRIO",
    "RTTIME",
    "SIGPENDING",
    "STACK",
}
TMPFS_OPTION = re.compile(
    r"size=[0-9]+[kmg%]?|nr_inodes=[0-9]+[kmg]?|mode=[0-7]{3,4}|uid=[0-9]+|gid=[0-9]+"
    r"|ro|rw|nosuid|suid|nodev|dev|noexec|exec|noatime|atime|strictatime|relatime"
)
MAX_CHUNK = 512 << 10  # file bytes per write_file / read_file request
SIGNALS = range(1, 65)


class Handlers:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def dispatch(self, op: str, message: dict):
        handler = getattr(self, f"op_{op}", None) if op.isidentifier() else None
        if handler is None:
            raise Failure(f"unknown request {op[:80]!r}")
        return handler(Args(message, op))

    # -- pod ----------------------------------------------------------------

    def op_ping(self, args: Args) -> dict:
        return {"pong": True}

    def op_start_pod(self, args: Args) -> dict:
        # First, before anything in the pod could read a random number or the time.
        with timed("clock and entropy set"):
            if (clock_ns := args.opt_int("clock_ns")) is not None:
                machine.set_clock(clock_ns)
            machine.add_entropy(args.base64("entropy_b64", limit=machine.MAX_ENTROPY))
        network = self.runtime.network
        hostname = pod.check_hostname(args.str("hostname"))
        resolv = pod.resolv_conf(
            args.strings("dns"), args.strings("dns_search"), args.strings("dns_options")
        )
        sysctl = args.string_map("sysctl")
        pod.check_sysctls(sysctl)
        interface = args.sub("interface")
        address = None
        if interface is not None:
            mtu = interface.int("mtu", 0, high=65535) or None
            with timed("interface configured"):
                address = pod.configure_interface(
                    interface.str("mac"),
                    interface.str("address"),
                    interface.opt_str("gateway"),
                    mtu=mtu,
                    addresses=interface.strings("addresses"),
                    routes=interface.list("routes"),
                )
        pod.apply_sysctls(sysctl)
        pod.set_hostname(hostname)
        network.hostname, network.address, network.resolv_conf = hostname, address, resolv
        return {"hostname": hostname, "address": address}

    def op_state(self, args: Args) -> dict:
        return self.runtime.state()

    def op_destroy_pod(self, args: Args) -> dict:
        self.runtime.destroy()  # the server powers off after answering, even on error
        return {}

    # -- containers ---------------------------------------------------------

    def op_create_container(self, args: Args) -> dict:
        config = args.sub("config", required=True)
        assert config is not None
        self.runtime.create(container_spec(config))
        return {}

    def op_start_container(self, args: Args) -> dict:
        self.runtime.start(args.id("container"))
        return {}

    def op_signal(self, args: Args) -> dict:
        signum = args.int("signal")
        if signum not in SIGNALS:
            raise args.fail(f"no signal {signum}")
        self.runtime.signal(args.id("container"), signum, args.opt_id("exec"))
        return {}

    def op_exec(self, args: Args) -> dict:
        argv = args.strings("args", required=True)
        if not argv:
            raise args.fail("args must not be empty")
        self.runtime.exec(
            args.id("container"),
            args.id("exec"),
            argv,
            _env(args, "env"),
            _absolute(args, "cwd", required=False),
            args.opt_str("user"),
            args.bool("terminal"),
            args.bool("stdin"),
        )
        return {}

    def op_resize(self, args: Args) -> dict:
        self.runtime.stdio(args.str("key")).resize(
            args.int("rows", high=65535), args.int("cols", high=65535)
        )
        return {}

    def op_close_stdin(self, args: Args) -> dict:
        self.runtime.stdio(args.str("key")).write(b"")
        return {}

    def op_write_file(self, args: Args) -> dict:
        data = args.base64("data_b64", limit=MAX_CHUNK)
        self.runtime.write_file(
            args.id("container"),
            args.str("path"),
            data,
            args.int("mode", 0o644, high=0o7777),
            args.bool("append"),
        )
        return {}

    def op_read_file(self, args: Args) -> dict:
        return self.runtime.read_file(
            args.id("container"),
            args.str("path"),
            args.int("offset", 0, high=2**62),
            args.int("length", MAX_CHUNK, high=MAX_CHUNK),
        )

    def op_remove_container(self, args: Args) -> dict:
        self.runtime.remove(args.id("container"))
        return {}


def container_spec(config: Args) -> dict:
    """The create_container config, checked and completed with defaults."""
    process = config.sub("process", required=True)
    assert process is not None
    argv = process.strings("args", required=True)
    if not argv:
        raise process.fail("args must not be empty")
    layers = config.strings("layers")
    for layer in layers:
        if not LAYER.fullmatch(layer) or ".." in layer.split("/"):
            raise config.fail(f"invalid layer directory {layer[:80]!r}")
    hostname = config.opt_str("hostname")
    sysctl = config.string_map("sysctl")
    pod.check_sysctls(sysctl)
    return {
        "id": config.id("id"),
        "rootfs": _share_dir(config.sub("rootfs")),
        "layers": layers,
        "opaque": _opaque(config, layers),
        "process": {
            "args": argv,
            "env": _env(process, "env"),
            "cwd": _absolute(process, "cwd", required=False) or "/",
            "user": process.str("user", ""),
            "additional_groups": process.strings("additional_groups"),
            "terminal": process.bool("terminal"),
            "stdin": process.bool("stdin"),
        },
        "hostname": pod.check_hostname(hostname) if hostname else None,
        "readonly_rootfs": config.bool("readonly_rootfs"),
        "mounts": [
            _mount(config.item(m, i, "mounts")) for i, m in enumerate(config.list("mounts"))
        ],
        "files": [_file(config.item(f, i, "files")) for i, f in enumerate(config.list("files"))],
        "sysctl": sysctl,
        "rlimits": [
            _rlimit(config.item(r, i, "rlimits")) for i, r in enumerate(config.list("rlimits"))
        ],
    }


def _opaque(config: Args, layers: list[str]) -> dict[str, list[str]]:
    """Per layer, its opaque directories (which 9p cannot show the guest)."""
    opaque = config.dict("opaque")
    for layer, directories in opaque.items():
        if layer not in layers:
            raise config.fail(f"opaque: {layer[:80]!r} is not one of the layers")
        if not isinstance(directories, list) or not all(
            isinstance(d, str) and d.startswith("/") and ".." not in d.split("/") and "\0" not in d
            for d in directories
        ):
            raise config.fail(f"opaque: {layer[:80]!r} must list absolute paths without '..'")
    return {layer: [os.path.normpath(d) for d in dirs] for layer, dirs in opaque.items()}


def _env(args: Args, name: str) -> list[str]:
    env = args.strings(name)
    for item in env:
        if "=" not in item or item.startswith("="):
            raise args.fail(f"environment entry {item[:80]!r} is not NAME=value")
    return env


def _absolute(args: Args, name: str, required: bool = True) -> str | None:
    value = args.str(name) if required else args.opt_str(name)
    if value is None:
        return None
    if not value.startswith("/") or ".." in value.split("/"):
        raise args.fail(f"{name} {value[:80]!r} must be an absolute path without '..'")
    return os.path.normpath(value)


def _mount(mount: Args) -> dict:
    kind = mount.str("type")
    destination = _absolute(mount, "destination")
    if destination == "/":
        raise mount.fail("cannot mount a volume on /")
    result: dict = {"type": kind, "destination": destination, "readonly": mount.bool("readonly")}
    if kind == "share":
        result.update(_share_dir(mount) or {})
    elif kind == "empty":
        result["name"] = mount.id("name")
    elif kind == "tmpfs":
        options = mount.strings("options")
        for option in options:
            if not TMPFS_OPTION.fullmatch(option):
                raise mount.fail(f"tmpfs option {option[:40]!r} is not allowed")
        result["options"] = options
    else:
        raise mount.fail(f"unknown mount type {kind[:40]!r} (share, empty or tmpfs)")
    return result


def _share_dir(share: Args | None) -> dict | None:
    """A share's tag and a directory or file below it (`path`, relative), checked."""
    if share is None:
        return None
    tag = share.id("tag")
    if tag == LAYERS_TAG:
        raise share.fail(f"{LAYERS_TAG} holds image layers, not a volume")
    path = share.opt_str("path") or ""
    if path and (not LAYER.fullmatch(path) or ".." in path.split("/")):
        raise share.fail(f"invalid path {path[:80]!r} below share {tag}")
    return {"tag": tag, "path": path}


def _file(item: Args) -> dict:
    return {
        "path": _absolute(item, "path"),
        "content_b64": item.str("content_b64", ""),
        "mode": item.int("mode", 0o644, high=0o7777),
        "user": item.str("user", ""),
        "group": item.str("group", ""),
    }


def _rlimit(item: Args) -> dict:
    name = item.str("type").upper().removeprefix("RLIMIT_")
    if name not in RLIMITS:
        raise item.fail(f"unknown rlimit {name[:40]!r}")
    return {
        "type": f"RLIMIT_{name}",
        "soft": item.int("soft", high=2**64 - 1),
        "hard": item.int("hard", high=2**64 - 1),
    }

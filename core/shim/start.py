"""`start`: print the address of the shim serving this task's pod, starting it if needed.

A sandbox (or a lone container) gets a new shim process; a container of a CRI pod
gets the address of its sandbox's shim (computed from the sandbox id, as runc's
shim does), so the pod's containers share one shim and one VM. containerd reads
everything `start` prints as the address, so it prints nothing else.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import subprocess
import sys

from .. import paths
from .bundle import save_config
from .ocispec import grouping, read_spec
from .status import RpcError

OPTIONS_TYPE = "runtimeoptions.v1.Options"


def config_from_options(data: bytes) -> str | None:
    """The ConfigPath of the runtime options containerd writes to stdin (a protobuf Any)."""
    if not data:
        return None
    from .protogen import shim_protos

    protos = shim_protos()
    wrapped = protos.message("google.protobuf.Any").FromString(data)
    if wrapped.type_url.rsplit("/", 1)[-1] != OPTIONS_TYPE:
        return None
    return protos.message(OPTIONS_TYPE).FromString(wrapped.value).config_path or None


def socket_path(config_file: str | None, address: str, namespace: str, group: str) -> str:
    digest = hashlib.sha256(f"{address}\0{namespace}\0{group}".encode()).hexdigest()[:32]
    directory = paths.run_root(config_file) / "shims"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return str(directory / f"{digest}.sock")


def _serving(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def start(args: argparse.Namespace) -> int:
    bundle = os.getcwd()
    try:
        config_file = config_from_options(sys.stdin.buffer.read())
        group = grouping(read_spec(bundle), args.id)
    except (RpcError, ValueError) as e:
        print(f"containerd-shim-hyper-v2: {e}", file=sys.stderr)
        return 1
    save_config(bundle, config_file)
    path = socket_path(config_file, args.address, args.namespace, group.sandbox_id)
    address = "unix://" + path
    if not _serving(path):
        if not group.is_sandbox:
            print(
                f"containerd-shim-hyper-v2: sandbox {group.sandbox_id} has no shim", file=sys.stderr
            )
            return 1
        _launch(args, path, config_file)
    _write_address(bundle, address)
    sys.stdout.write(address)
    return 0


def _launch(args: argparse.Namespace, path: str, config_file: str | None) -> None:
    """Bind the socket here (so the address works once printed) and hand it to the shim."""
    if os.path.lexists(path):
        os.unlink(path)  # a shim that died left it
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chmod(path, 0o600)
    listener.listen(64)
    command = [
        sys.executable,
        "-m",
        "hypercontainer.shim.main",
        "-namespace",
        args.namespace,
        "-address",
        args.address,
        "-id",
        args.id,
        "-socket",
        path,
        "--listen-fd",
        str(listener.fileno()),
    ]
    if config_file:
        command += ["--config", config_file]
    if args.debug:
        command.append("-debug")
    command.append("serve")
    # Its own session: the shim outlives this process and containerd's signals to it.
    subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=(listener.fileno(),),
        start_new_session=True,
    )
    listener.close()


def _write_address(bundle: str, address: str) -> None:
    temporary = os.path.join(bundle, ".address")
    with open(temporary, "w") as f:
        f.write(address)
    os.replace(temporary, os.path.join(bundle, "address"))

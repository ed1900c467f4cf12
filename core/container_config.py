"""What the guest agent needs to create a container: image config + container spec.

The result is the `create_container` request described in docs/guest.md.
Docker's rules decide the process: the container's entrypoint replaces the
image's (and then drops the image's cmd), its command replaces the image's
cmd, its envs override the image's by name.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

from . import podshare
from . import spec as podspec
from .drivers import ImageConfig, ResolvedImage, Share
from .errors import UserError
from .podshare import POD_SHARE_TAG

LAYERS_TAG = "hc_layers"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def volume_tag(index: int) -> str:
    return f"hc_vol_{index}"


def check_runnable(pod: podspec.PodSpec, hyperd_is_root: bool | None = None) -> None:
    """What a valid pod file may still ask that this runtime cannot do: refused before
    anything is created (by `run`, `create` and `validate` alike). `hyperd_is_root`:
    whether the hyperd that runs the pod is root (None: it is this process)."""
    if hyperd_is_root is None:
        hyperd_is_root = os.geteuid() == 0
    if pod.services:
        raise UserError("services: not supported by this runtime")
    for volume in pod.volumes:
        if volume.is_empty:
            continue
        if volume.format != "vfs":
            raise UserError(
                f"volume {volume.name}: format {volume.format} is not supported "
                "(host directories and files, and empty volumes are)"
            )
        source = Path(volume.source)
        if source.is_file():
            if not hyperd_is_root:
                raise UserError(
                    f"volume {volume.name}: a host file ({source}) is shared only "
                    "by a hyperd running as root; share its directory instead"
                )
        elif not source.is_dir():
            raise UserError(
                f"volume {volume.name}: {source} is neither a directory nor a file on the host"
            )


def volume_shares(pod: podspec.PodSpec) -> list[Share]:
    """The host directories a pod's volumes export (a host file goes through the pod's
    own share instead: see host_binds)."""
    check_runnable(pod)
    return [
        Share(volume_tag(index), Path(volume.source), readonly=volume.read_only)
        for index, volume in enumerate(pod.volumes)
        if not volume.is_empty and not Path(volume.source).is_file()
    ]


def host_binds(pod: podspec.PodSpec, container: podspec.Container) -> list[podspec.Bind]:
    """What hyperd bind-mounts below the pod share for this container: its binds, then
    the host files its volumes name (a VM share exports directories, and sharing the
    file's own directory would show its neighbours)."""
    volumes = {v.name: v for v in pod.volumes}
    files = [
        podspec.Bind(
            source=volumes[ref.volume].source,
            path=ref.path,
            read_only=ref.read_only or volumes[ref.volume].read_only,
        )
        for ref in container.volumes
        if not volumes[ref.volume].is_empty and Path(volumes[ref.volume].source).is_file()
    ]
    return [*container.binds, *files]


def process_args(container: podspec.Container, image: ImageConfig) -> list[str]:
    # An entrypoint given, even an empty one, replaces the image's (Docker's rule).
    if container.entrypoint is not None:
        args = container.entrypoint + container.command
    else:
        args = image.entrypoint + (container.command or image.cmd)
    if not args:
        raise UserError(f"container {container.name}: no command given and the image has none")
    return args


def environment(container: podspec.Container, image: ImageConfig) -> list[str]:
    env: dict[str, str] = {}
    for item in [DEFAULT_PATH, *image.env]:
        key, _, value = item.partition("=")
        env[key] = value
    for var in container.envs:
        env[var.env] = var.value
    if container.tty:
        env.setdefault("TERM", "xterm")
    return [f"{k}={v}" for k, v in env.items()]


def user_of(container: podspec.Container, image: ImageConfig) -> tuple[str, list[str]]:
    if container.user and container.user.name:
        user = container.user.name
        if container.user.group:
            user += ":" + container.user.group
        return user, list(container.user.additional_groups)
    return image.user, []


def mounts(
    pod: podspec.PodSpec, container: podspec.Container, container_id: str = ""
) -> list[dict[str, Any]]:
    index = {v.name: (i, v) for i, v in enumerate(pod.volumes)}
    result = []
    for ref in container.volumes:
        i, volume = index[ref.volume]
        readonly = ref.read_only or volume.read_only
        if volume.is_empty:
            result.append(
                {
                    "type": "empty",
                    "name": volume.name,
                    "destination": ref.path,
                    "readonly": readonly,
                }
            )
        elif not Path(volume.source).is_file():  # a file is one of the host binds
            result.append(
                {
                    "type": "share",
                    "tag": volume_tag(i),
                    "destination": ref.path,
                    "readonly": readonly,
                }
            )
    for n, bind in enumerate(host_binds(pod, container)):  # below the pod share, by hyperd
        result.append(
            {
                "type": "share",
                "tag": POD_SHARE_TAG,
                "path": podshare.bind_path(container_id, n),
                "destination": bind.path,
                "readonly": bind.read_only,
            }
        )
    for tmpfs in container.tmpfs:
        result.append({"type": "tmpfs", "destination": tmpfs.path, "options": list(tmpfs.options)})
    return result


def files(pod: podspec.PodSpec, container: podspec.Container) -> list[dict[str, Any]]:
    contents = {f.name: f.data for f in pod.files}
    return [
        {
            "path": ref.destination,  # a path ending in / is a directory: + the file's name
            "content_b64": base64.b64encode(contents[ref.filename]).decode(),
            "mode": int(ref.perm, 8),
            "user": ref.user,
            "group": ref.group,
        }
        for ref in container.files
    ]


def rlimits(container: podspec.Container) -> list[dict[str, Any]]:
    return [
        {"type": "RLIMIT_" + u.name.upper(), "soft": u.soft, "hard": u.hard}
        for u in container.ulimits
    ]


def agent_config(
    container_id: str,
    container: podspec.Container,
    image: ResolvedImage | None,
    pod: podspec.PodSpec,
    hostname: str,
    stdin_open: bool = False,
) -> dict[str, Any]:
    """The create_container request for the guest agent (`image` None: the container's
    root is a host directory, bound below the pod share)."""
    if image is None:
        image = ResolvedImage(id="", reference="", layers=[], config=ImageConfig())
    user, groups = user_of(container, image.config)
    rootfs = None
    if container.rootfs:
        rootfs = {"tag": POD_SHARE_TAG, "path": podshare.rootfs_path(container_id)}
    return {
        "id": container_id,
        "rootfs": rootfs,
        "layers": list(image.layers),
        "opaque": {layer: ["/" + d for d in dirs] for layer, dirs in image.opaque_dirs.items()},
        "process": {
            "args": process_args(container, image.config),
            "env": environment(container, image.config),
            "cwd": container.workdir or image.config.working_dir or "/",
            "user": user,
            "additional_groups": groups,
            "terminal": container.tty,
            # Without an attached client (run -d, create) stdin is empty, as in Docker.
            "stdin": stdin_open or container.tty,
        },
        "hostname": hostname,
        "readonly_rootfs": container.read_only,
        "mounts": mounts(pod, container, container_id),
        "files": files(pod, container),
        "sysctl": dict(container.sysctl),
        "rlimits": rlimits(container),
    }

"""What a bundle's OCI config.json asks for, as hyperd's pod and container specs.

Honoured: args, env, cwd, user (uid, gid, additional gids), terminal, hostname,
bind mounts (through the pod share) and tmpfs mounts, read-only root, sysctls and
rlimits (applied by crun in the guest). The kernel file systems a runtime mounts
itself (/proc, /sys, /dev, ...) come from the guest agent. What a value of
these cannot honour is refused by name; host paths are judged by hyperd
(hostpaths.py), which refuses what a container may not get. Capabilities,
seccomp, AppArmor, devices, masked paths and cgroup resources in the spec are
not read: the guest agent applies its own defaults inside the VM, which is the
boundary (docs/kubernetes.md, "Not supported, or different from runc").
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from ..specfields import ULIMITS
from .status import Code, RpcError

CONTAINER_TYPE = "io.kubernetes.cri.container-type"
SANDBOX_ID = "io.kubernetes.cri.sandbox-id"
SANDBOX_NAME = "io.kubernetes.cri.sandbox-name"
SANDBOX_NAMESPACE = "io.kubernetes.cri.sandbox-namespace"
CONTAINER_NAME = "io.kubernetes.cri.container-name"
MEMORY_ANNOTATION = "io.hypercontainer.pod.memory"  # MiB of the pod's VM
VCPU_ANNOTATION = "io.hypercontainer.pod.vcpu"
MAX_SPEC = 1 << 20

# What a runtime mounts by itself: the guest agent provides these in every container.
KERNEL_MOUNTS = {
    "/proc": "proc",
    "/dev": "tmpfs",
    "/dev/pts": "devpts",
    "/dev/mqueue": "mqueue",
    "/sys": "sysfs",
    "/sys/fs/cgroup": "cgroup",
}
# /dev/shm is a tmpfs of the guest per container: a host directory shared over 9p
# would not behave as shared memory.
GUEST_SHM = "/dev/shm"
TMPFS_OPTIONS = re.compile(
    r"size=[0-9]+[kmg%]?|nr_inodes=[0-9]+[kmg]?|mode=[0-7]{3,4}"
    r"|uid=[0-9]+|gid=[0-9]+|ro|nosuid|nodev|noexec|strictatime|relatime"
    r"|noatime"
)
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
_HOSTNAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")


def invalid(message: str) -> RpcError:
    return RpcError(Code.INVALID_ARGUMENT, message)


def read_spec(bundle: str) -> dict[str, Any]:
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SPEC + 1)
    except OSError as e:
        raise invalid(f"bundle {bundle}: {e.strerror}") from None
    if len(data) > MAX_SPEC:
        raise invalid(f"{path} is larger than {MAX_SPEC} bytes")
    try:
        spec = json.loads(data)
    except ValueError as e:
        raise invalid(f"{path} is not JSON: {e}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("process"), dict):
        raise invalid(f"{path}: no process")
    return spec


@dataclass(frozen=True)
class Grouping:
    """Which pod a bundle's container belongs to."""

    sandbox_id: str  # the pod's: the sandbox's own id, or the task's when it runs alone
    is_sandbox: bool  # this task makes the pod (a CRI sandbox, or a lone container)


def grouping(spec: dict[str, Any], task_id: str) -> Grouping:
    annotations = spec.get("annotations") or {}
    if annotations.get(CONTAINER_TYPE) == "container":
        sandbox = annotations.get(SANDBOX_ID)
        if not isinstance(sandbox, str) or not sandbox:
            raise invalid(f"container {task_id} names no {SANDBOX_ID}")
        return Grouping(sandbox, False)
    return Grouping(task_id, True)


def safe_name(base: str, unique: str, limit: int = 63) -> str:
    """A hyperd name from `base`, with 8 hex of `unique` so that names never collide."""
    suffix = hashlib.sha256(unique.encode()).hexdigest()[:8]
    cleaned = _NAME_CHARS.sub("-", base).strip("-._")[: limit - 9] or "task"
    return f"{cleaned}-{suffix}"


def pod_spec(spec: dict[str, Any], namespace: str, task_id: str) -> tuple[dict[str, Any], str]:
    """hyperd's pod for a sandbox (or lone container), and its name."""
    annotations = spec.get("annotations") or {}
    name, k8s_namespace = annotations.get(SANDBOX_NAME), annotations.get(SANDBOX_NAMESPACE)
    base = f"{name}.{k8s_namespace}" if name and k8s_namespace else task_id
    pod_id = safe_name(base, f"{namespace}/{task_id}")
    labels = {"io.containerd.namespace": namespace, "io.containerd.task": task_id}
    if name and k8s_namespace:
        labels |= {
            "io.kubernetes.pod.name": str(name),
            "io.kubernetes.pod.namespace": str(k8s_namespace),
        }
    body: dict[str, Any] = {"id": pod_id, "labels": labels, "containers": []}
    hostname = spec.get("hostname")
    if isinstance(hostname, str) and _HOSTNAME.fullmatch(hostname) and len(hostname) < 64:
        body["hostname"] = hostname
    resource = {}
    for key, field in ((VCPU_ANNOTATION, "vcpu"), (MEMORY_ANNOTATION, "memory")):
        value = annotations.get(key)
        if value is not None:
            if not str(value).isdigit():
                raise invalid(f"annotation {key}: {str(value)[:40]!r} is not a number")
            resource[field] = int(value)
    if resource:
        body["resource"] = resource
    return body, pod_id


def network_namespace(spec: dict[str, Any]) -> str | None:
    """The network namespace the spec joins (CNI's), or None: host network."""
    for namespace in (spec.get("linux") or {}).get("namespaces") or []:
        if isinstance(namespace, dict) and namespace.get("type") == "network":
            path = namespace.get("path")
            return path if isinstance(path, str) and path else None
    return None


def container_spec(
    spec: dict[str, Any], task_id: str, namespace: str, rootfs: str
) -> dict[str, Any]:
    """hyperd's container for the bundle's process, its root being host directory `rootfs`."""
    process = spec["process"]
    args = process.get("args")
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        raise invalid("process.args must be a non-empty list of strings")
    annotations = spec.get("annotations") or {}
    base = annotations.get(CONTAINER_NAME) or task_id
    body: dict[str, Any] = {
        "name": safe_name(str(base), f"{namespace}/{task_id}"),
        "rootfs": rootfs,
        "entrypoint": [],
        "command": args,
        "envs": environment(process.get("env") or []),
        "workdir": process.get("cwd") or "/",
        "tty": bool(process.get("terminal")),
        "readOnly": bool((spec.get("root") or {}).get("readonly")),
        "labels": {"io.containerd.task": task_id, "io.containerd.namespace": namespace},
    }
    user = user_of(process.get("user") or {})
    if user:
        body["user"] = user
    body["ulimits"] = rlimits(process.get("rlimits") or [])
    sysctl = (spec.get("linux") or {}).get("sysctl") or {}
    if not isinstance(sysctl, dict):
        raise invalid("linux.sysctl must be an object")
    body["sysctl"] = {str(k): str(v) for k, v in sysctl.items()}
    body["binds"], body["tmpfs"] = mounts(spec.get("mounts") or [])
    return body


def environment(env: list[Any]) -> list[dict[str, str]]:
    result = []
    for item in env:
        if not isinstance(item, str) or "=" not in item:
            raise invalid(f"process.env entry {str(item)[:80]!r} is not NAME=value")
        name, _, value = item.partition("=")
        result.append({"env": name, "value": value})
    return result


def user_of(user: dict[str, Any]) -> dict[str, Any]:
    if user.get("username"):
        return {"name": str(user["username"])}
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    groups = user.get("additionalGids") or []
    if not all(isinstance(n, int) and n >= 0 for n in (uid, gid, *groups)):
        raise invalid("process.user ids must be non-negative numbers")
    return {
        "name": str(uid),
        "group": str(gid),
        "additionalGroups": [str(g) for g in groups if g != gid],
    }


def rlimits(limits: list[Any]) -> list[dict[str, Any]]:
    result = []
    for limit in limits:
        name = str((limit or {}).get("type", "")).upper().removeprefix("RLIMIT_").lower()
        if name not in ULIMITS:
            raise invalid(f"rlimit {str(limit)[:80]} is not one the guest can apply")
        result.append({"name": name, "soft": limit.get("soft", 0), "hard": limit.get("hard", 0)})
    return result


def mounts(entries: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The spec's mounts as (binds, tmpfs); the kernel's own are the guest's business."""
    binds, tmpfs = [], []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("destination"), str):
            raise invalid(f"mount {str(entry)[:80]} has no destination")
        destination = os.path.normpath(entry["destination"])
        kind = entry.get("type") or ""
        options = [str(o) for o in entry.get("options") or []]
        if KERNEL_MOUNTS.get(destination) == kind or (
            destination == GUEST_SHM and kind in ("tmpfs", "bind", "")
        ):
            continue
        if kind == "bind" or "bind" in options or "rbind" in options:
            source = entry.get("source")
            if not isinstance(source, str) or not source.startswith("/"):
                raise invalid(f"bind mount at {destination}: source must be an absolute path")
            binds.append({"source": source, "path": destination, "readOnly": "ro" in options})
        elif kind == "tmpfs":
            tmpfs.append(
                {"path": destination, "options": [o for o in options if TMPFS_OPTIONS.fullmatch(o)]}
            )
        else:
            raise invalid(
                f"mount at {destination}: type {kind[:40]!r} is not supported (bind and tmpfs are)"
            )
    return binds, tmpfs

"""The OCI runtime configuration (config.json) of a container, as a container engine writes it.

Containers get their own mount, pid, uts, ipc and cgroup namespaces but share
the pod's network namespace (the VM's), so the containers of a pod reach each
other on localhost, as in a Kubernetes pod.
"""

from __future__ import annotations

from .users import User

# The capabilities a container engine grants by default.
DEFAULT_CAPABILITIES = [
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_MKNOD",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
]

MASKED_PATHS = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
]
READONLY_PATHS = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
]

STANDARD_MOUNTS = [
    {
        "destination": "/proc",
        "type": "proc",
        "source": "proc",
        "options": ["nosuid", "noexec", "nodev"],
    },
    {
        "destination": "/dev",
        "type": "tmpfs",
        "source": "tmpfs",
        "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
    },
    {
        "destination": "/dev/pts",
        "type": "devpts",
        "source": "devpts",
        "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    },
    {
        "destination": "/dev/shm",
        "type": "tmpfs",
        "source": "shm",
        "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
    },
    {
        "destination": "/dev/mqueue",
        "type": "mqueue",
        "source": "mqueue",
        "options": ["nosuid", "noexec", "nodev"],
    },
    {
        "destination": "/sys",
        "type": "sysfs",
        "source": "sysfs",
        "options": ["nosuid", "noexec", "nodev", "ro"],
    },
    {
        "destination": "/sys/fs/cgroup",
        "type": "cgroup",
        "source": "cgroup",
        "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
    },
]

# Character devices a container may use (the ones crun creates in /dev).
ALLOWED_DEVICES = [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2), (10, 200)]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def process_env(env: list[str], user: User, hostname: str, terminal: bool) -> list[str]:
    """`env` plus the variables a container engine sets when the image does not."""
    names = {item.partition("=")[0] for item in env}
    extra = []
    if "PATH" not in names:
        extra.append(f"PATH={DEFAULT_PATH}")
    if "HOSTNAME" not in names and hostname:
        extra.append(f"HOSTNAME={hostname}")
    if "HOME" not in names:
        extra.append(f"HOME={user.home}")
    if terminal and "TERM" not in names:
        extra.append("TERM=xterm")
    return extra + env


def process(
    args: list[str], env: list[str], cwd: str, user: User, terminal: bool, rlimits: list[dict]
) -> dict:
    capabilities = list(DEFAULT_CAPABILITIES) if user.uid == 0 else []
    return {
        "terminal": terminal,
        "user": {"uid": user.uid, "gid": user.gid, "additionalGids": user.groups},
        "args": args,
        "env": env,
        "cwd": cwd,
        "capabilities": {
            "bounding": list(DEFAULT_CAPABILITIES),
            "effective": capabilities,
            "permitted": capabilities,
            "inheritable": [],
            "ambient": [],
        },
        "rlimits": rlimits,
        "noNewPrivileges": False,
    }


def config(
    process_spec: dict,
    hostname: str,
    readonly_rootfs: bool,
    mounts: list[dict],
    sysctl: dict[str, str],
) -> dict:
    devices = [{"allow": False, "access": "rwm"}]
    devices += [
        {"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"}
        for major, minor in ALLOWED_DEVICES
    ]
    devices.append({"allow": True, "type": "c", "major": 136, "access": "rwm"})  # pty slaves
    return {
        "ociVersion": "1.0.2",
        "process": process_spec,
        "root": {"path": "rootfs", "readonly": readonly_rootfs},
        "hostname": hostname,
        "mounts": STANDARD_MOUNTS + mounts,
        "linux": {
            "namespaces": [{"type": kind} for kind in ("pid", "ipc", "uts", "mount", "cgroup")],
            "sysctl": sysctl,
            "resources": {"devices": devices},
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS,
        },
    }

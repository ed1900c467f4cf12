"""The building blocks of the pod file's models: bounds, field types, error places.

spec.py composes the models from these; specload.py uses the error helpers.
Every type bounds its size, so a hostile pod file fails cleanly.
"""

from __future__ import annotations

import ipaddress
import re
import signal
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from .errors import UserError

# Bounds, so that a hostile pod file fails cleanly instead of exhausting anything.
MAX_STRING = 4096
MAX_NAME = 63
MAX_PATH = 4096
MAX_ARG = 65536
MAX_FILE_BYTES = 1 << 20  # one file's decoded content
MAX_TOTAL_FILE_BYTES = 16 << 20  # all files of a pod
MIN_MEMORY_MB, MAX_MEMORY_MB = 64, 262144
MAX_VCPU = 64
MAX_CONTAINERS = 64
MAX_ITEMS = 256  # volumes, files, port mappings, mounts, services...
MAX_ENVS = 1024
MAX_ARGS = 1024
MAX_LABELS = 256

Loc = tuple[str | int, ...]


class SpecError(UserError):
    """A rule broken at a location of the pod file (canonical key names)."""

    def __init__(self, loc: Loc, reason: str):
        self.loc, self.reason = loc, reason
        super().__init__(f"{render_loc(loc)}: {reason}" if loc else reason)


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+(?:[.:/][A-Za-z0-9_-]+)*", re.ASCII)


def render_loc(loc: Loc, spelling: Mapping[Loc, str] | None = None) -> str:
    """`('containers', 0, 'image')` -> `containers[0].image`; `spelling` maps a
    location to the key as the user wrote it."""
    text = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        key = (spelling or {}).get(loc[: i + 1], part)
        if len(key) <= 64 and _PLAIN_KEY.fullmatch(key):
            text += f".{key}" if text else key
        else:  # odd keys are quoted so the message stays one readable line
            text += "[" + repr(key if len(key) <= 40 else key[:37] + "...") + "]"
    return text


def show(value: object) -> str:
    """A value quoted for an error message: one line, bounded."""
    text = repr(value)
    return text if len(text) <= 48 else text[:45] + "..."


# ---- field types -----------------------------------------------------------------


def matching(regex: str, what: str) -> AfterValidator:
    compiled = re.compile(regex, re.ASCII)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"{show(value)} is not {what}")
        return value

    return AfterValidator(check)


def one_of(*choices: str) -> AfterValidator:
    """Case-insensitive choice, returned in its canonical spelling."""
    canonical = {c.lower(): c for c in choices}

    def check(value: str) -> str:
        if value.lower() not in canonical:
            raise ValueError(f"{show(value)} is not one of {', '.join(choices)}")
        return canonical[value.lower()]

    return AfterValidator(check)


def absolute_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"{show(value)} is not an absolute path")
    if ".." in value.split("/"):
        raise ValueError(f"{show(value)} must not contain '..'")
    if any(ord(c) < 32 or c == "\x7f" for c in value):
        raise ValueError(f"{show(value)} contains control characters")
    return value


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{show(value)} is not an IP address") from None


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_interface(value))
    except ValueError:
        raise ValueError(f"{show(value)} is not an IP address with prefix length") from None


_SIGNALS = {s.name for s in signal.Signals}


def _signal(value: str) -> str:
    if value.isascii() and value.isdigit() and 1 <= int(value) <= 64:
        return str(int(value))
    name = value.upper() if value.upper().startswith("SIG") else "SIG" + value.upper()
    if name not in _SIGNALS:
        raise ValueError(f"{show(value)} is not a signal name or number")
    return name


_PORT_RANGE = re.compile(r"(\d{1,5})(?:-(\d{1,5}))?", re.ASCII)


def port_bounds(text: str) -> tuple[int, int]:
    """`"3000-3010"` -> (3000, 3010); `"80"` -> (80, 80)."""
    match = _PORT_RANGE.fullmatch(text)
    if not match:
        raise ValueError(f"{show(text)} is not a port or a port range like 3000-3010")
    first = int(match[1])
    last = int(match[2] or first)
    if not (1 <= first <= 65535 and 1 <= last <= 65535):
        raise ValueError(f"{show(text)}: ports are 1-65535")
    if first > last:
        raise ValueError(f"{show(text)}: the range is reversed")
    return first, last


def _port_range(value: str) -> str:
    first, last = port_bounds(value)
    return str(first) if first == last else f"{first}-{last}"


_DNS_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REGISTRY = rf"{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*(?::[0-9]{{1,5}})?"
_IMAGE = (
    rf"(?:{_REGISTRY}/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::\w[\w.-]{0,127})?(?:@[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,})?"
)
_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"


def text(max_length: int = MAX_STRING, min_length: int = 0) -> StringConstraints:
    return StringConstraints(min_length=min_length, max_length=max_length)


Name = Annotated[str, text(MAX_NAME, 1), matching(_NAME, "a valid name (letters, digits, _ . -)")]
RefName = Annotated[  # volumes and files: names other parts of the pod file refer to
    str, text(128, 1), matching(_NAME, "a valid name (letters, digits, _ . -)")
]
Hostname = Annotated[
    str,
    text(63, 1),
    matching(rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})*", "a hostname (lower-case DNS labels)"),
]
Domain = Annotated[
    str, text(253, 1), matching(rf"{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*", "a domain name")
]
DnsOption = Annotated[
    str, text(64, 1), matching(r"[A-Za-z0-9_-]+(?::[0-9]+)?", "a resolver option")
]
Image = Annotated[str, text(512, 1), matching(_IMAGE, "an image reference like busybox:latest")]
ContainerPath = Annotated[str, text(MAX_PATH, 1), AfterValidator(absolute_path)]
HostPath = Annotated[str, text(MAX_PATH, 1), AfterValidator(absolute_path)]
TmpfsOption = Annotated[
    str,
    text(64, 1),
    matching(
        r"(?:size=[0-9]+[kmg%]?|nr_inodes=[0-9]+[kmg]?|mode=[0-7]{3,4}|uid=[0-9]+|gid=[0-9]+"
        r"|ro|rw|nosuid|suid|nodev|dev|noexec|exec|noatime|atime|strictatime|relatime)",
        "a tmpfs option (size=, mode=, uid=, gid=, nr_inodes=, ro, nosuid, nodev, noexec, ...)",
    ),
]
Arg = Annotated[str, text(MAX_ARG), matching(r"[^\x00]*", "free of NUL characters")]
EnvName = Annotated[
    str, text(255, 1), matching(r"[A-Za-z_][A-Za-z0-9_.-]*", "an environment variable name")
]
Owner = Annotated[  # a user or group, by name or number
    str, text(32), matching(r"(?:[A-Za-z0-9_][A-Za-z0-9_.-]*\$?)?", "a user or group name or id")
]
Perm = Annotated[str, text(4, 1), matching(r"[0-7]{3,4}", "an octal mode like 0644")]
Port = Annotated[int, Field(ge=1, le=65535)]
PortRange = Annotated[str, text(11, 1), AfterValidator(_port_range)]
IP = Annotated[str, text(64, 1), AfterValidator(_ip)]
Cidr = Annotated[str, text(64, 1), AfterValidator(_cidr)]
Mac = Annotated[str, matching(r"(?:[0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}", "a MAC address")]
Protocol = Annotated[str, one_of("tcp", "udp")]
RestartPolicy = Annotated[str, one_of("never", "onFailure", "always")]
Signal = Annotated[str, text(16, 1), AfterValidator(_signal)]
LabelKey = Annotated[str, text(253, 1), matching(r"[A-Za-z0-9][A-Za-z0-9_./:-]*", "a label key")]
Labels = Annotated[dict[LabelKey, str], Field(max_length=MAX_LABELS)]
SysctlKey = Annotated[
    str, text(256, 1), matching(r"[A-Za-z0-9_]+(?:[./-][A-Za-z0-9_]+)*", "a sysctl name")
]
ULIMITS = (
    "as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue",
    "nice", "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack",
)  # fmt: skip


def items(limit: int = MAX_ITEMS) -> Any:
    return Field(default_factory=list, max_length=limit)


class SpecModel(BaseModel):
    """Keys are the original's camelCase; unknown keys are errors."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        coerce_numbers_to_str=True,  # YAML writes `group: 13`, `value: 8080`
        str_max_length=MAX_STRING,
    )
    # Keys the original accepted that are refused here, with the reason.
    unsupported: ClassVar[Mapping[str, str]] = {}

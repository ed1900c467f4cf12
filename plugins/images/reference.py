"""Image references, normalised the way Docker does.

`busybox` is `docker.io/library/busybox:latest`; `localhost:5000/x` lives on
the registry `localhost:5000`; a first path component is a registry only when
it looks like a host (a dot, a port, or `localhost`).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from hypercontainer.errors import UserError

from . import digests

DOCKER_HUB = "docker.io"
DOCKER_HUB_ALIASES = {"index.docker.io", "registry-1.docker.io", "docker.io"}
DEFAULT_TAG = "latest"
MAX_NAME = 255

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_HOSTNAME = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"(?:{_HOSTNAME}(?:\.{_HOSTNAME})*|\[[0-9a-fA-F:]+\])(?::[0-9]{{1,5}})?")
_TAG = re.compile(r"[\w][\w.-]{0,127}")


@dataclass(frozen=True)
class Reference:
    registry: str  # host[:port], "docker.io" for Docker Hub
    repository: str  # path inside the registry, e.g. library/busybox
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    @property
    def target(self) -> str:
        """What to ask the registry for: the digest if pinned, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, None, digest)

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.registry, self.repository, tag, None)


def parse(text: str, default_registry: str = DOCKER_HUB) -> Reference:
    """Parse and normalise `text`; a UserError says what is wrong with it."""
    if not text or len(text) > MAX_NAME + 200:
        raise UserError(f"invalid image reference {text[:80]!r}")
    remainder, digest = _split_digest(text)
    name, tag = _split_tag(remainder)
    registry, repository = _split_registry(name, default_registry)
    if len(f"{registry}/{repository}") > MAX_NAME:
        raise UserError(f"invalid image reference {text[:80]!r}: name longer than {MAX_NAME}")
    if not _PATH.fullmatch(repository):
        hint = " (must be lowercase)" if repository.lower() != repository else ""
        raise UserError(f"invalid image reference {text!r}: bad repository name{hint}")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(registry, repository, tag, digest)


def _split_digest(text: str) -> tuple[str, str | None]:
    name, at, digest = text.partition("@")
    if not at:
        return text, None
    try:
        return name, digests.parse(digest)
    except UserError as e:
        raise UserError(f"invalid image reference {text!r}: {e}") from None


def _split_tag(text: str) -> tuple[str, str | None]:
    colon = text.rfind(":")
    if colon <= text.rfind("/"):
        return text, None
    tag = text[colon + 1 :]
    if not _TAG.fullmatch(tag):
        raise UserError(f"invalid image reference {text!r}: bad tag {tag!r}")
    return text[:colon], tag


def _split_registry(name: str, default_registry: str) -> tuple[str, str]:
    first, slash, rest = name.partition("/")
    if slash and _looks_like_host(first):
        if not _DOMAIN.fullmatch(first):
            raise UserError(f"invalid image reference {name!r}: bad registry {first!r}")
        registry = DOCKER_HUB if first in DOCKER_HUB_ALIASES else first
        repository = rest
    else:
        registry, repository = default_registry, name
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    return registry, repository


def _looks_like_host(component: str) -> bool:
    return (
        "." in component
        or ":" in component
        or component == "localhost"
        or component.lower() != component
    )


def parse_registry(text: str) -> str:
    """A registry name as `hyperctl login` takes it: `host[:port]`, a URL tolerated."""
    name = re.sub(r"^https?://", "", text.strip()).rstrip("/")
    name = name.removesuffix("/v1").removesuffix("/v2")
    if not _DOMAIN.fullmatch(name):
        raise UserError(f"invalid registry name {text[:100]!r}")
    return DOCKER_HUB if name in DOCKER_HUB_ALIASES else name


def host_of(registry: str) -> str:
    """The host part of `host[:port]` (brackets of an IPv6 literal removed)."""
    if registry.startswith("["):
        return registry[1 : registry.index("]")]
    return registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry


def is_loopback(registry: str) -> bool:
    """localhost, 127.0.0.0/8 and ::1: Docker talks plain HTTP to them unasked."""
    host = host_of(registry)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def familiar(ref: Reference) -> tuple[str, str]:
    """(repository, tag) as `hyperctl images` shows them: busybox, not docker.io/library/busybox."""
    repository = ref.name
    if ref.registry == DOCKER_HUB:
        repository = ref.repository.removeprefix("library/")
    return repository, ref.tag or "<none>"

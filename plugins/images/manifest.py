"""Manifests and indexes: OCI and Docker schema 2, parsed strictly.

A manifest names an image's config and layers; an index (a Docker "manifest
list") names one manifest per platform. Schema 1 is refused: it carries no
config digest and no content-addressed layers to verify.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hypercontainer.errors import UserError

from . import digests

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)

MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEXES = (OCI_INDEX, DOCKER_LIST)
CONFIGS = (OCI_CONFIG, DOCKER_CONFIG)
# Every type the registry may answer with, best first (the Accept header).
ACCEPTED = (OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST)

# Layer media types -> compression ("gzip", "zstd", "" for none).
LAYERS = {
    "application/vnd.oci.image.layer.v1.tar": "",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar": "",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
}

MAX_MANIFEST_SIZE = 4 * 2**20  # as containerd: no real manifest comes close
MAX_CONFIG_SIZE = 8 * 2**20
MAX_SIZE = 2**53  # a descriptor's size must be a plausible integer


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: dict[str, str] = field(default_factory=dict, hash=False)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.platform:
            data["platform"] = {"os": self.platform.os, "architecture": self.platform.architecture}
            if self.platform.variant:
                data["platform"]["variant"] = self.platform.variant
        if self.annotations:
            data["annotations"] = dict(self.annotations)
        return data


@dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True)
class Index:
    media_type: str
    manifests: tuple[Descriptor, ...]


def parse(body: bytes, content_type: str = "") -> Manifest | Index:
    """A manifest or an index from its bytes; UserError for anything else."""
    if len(body) > MAX_MANIFEST_SIZE:
        raise UserError(f"manifest larger than {MAX_MANIFEST_SIZE} bytes")
    data = _json_object(body, "manifest")
    media_type = data.get("mediaType") or content_type.split(";")[0].strip()
    if data.get("schemaVersion") == 1 or media_type in SCHEMA1:
        raise UserError(
            "image uses the Docker schema 1 manifest format, which is not supported; "
            "re-push it with a current client (schema 2 or OCI)"
        )
    if data.get("schemaVersion") != 2:
        raise UserError(f"unsupported manifest schemaVersion {data.get('schemaVersion')!r}")
    if media_type in INDEXES or (not media_type and "manifests" in data):
        entries = _list(data, "manifests")
        return Index(media_type or OCI_INDEX, tuple(_descriptor(e) for e in entries))
    if media_type in MANIFESTS or (not media_type and "layers" in data):
        config = _descriptor(data.get("config"))
        if config.media_type not in CONFIGS:
            raise UserError(f"not a container image (config media type {config.media_type!r})")
        layers = tuple(_descriptor(e) for e in _list(data, "layers"))
        for layer in layers:
            compression(layer)
        return Manifest(media_type or OCI_MANIFEST, config, layers)
    raise UserError(f"unsupported manifest media type {media_type!r}")


def compression(layer: Descriptor) -> str:
    """How a layer is compressed, from its media type; UserError if unsupported."""
    try:
        return LAYERS[layer.media_type]
    except KeyError:
        raise UserError(f"unsupported layer media type {layer.media_type!r}") from None


def parse_platform(text: str) -> Platform:
    parts = text.split("/")
    if not 2 <= len(parts) <= 3 or not all(parts):
        raise UserError(f"invalid platform {text!r}; expected os/arch[/variant]")
    return Platform(parts[0], normal_arch(parts[1]), parts[2] if len(parts) == 3 else "")


_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm"}


def normal_arch(arch: str) -> str:
    return _ARCH_ALIASES.get(arch, arch)


def select(index: Index, wanted: Platform) -> Descriptor:
    """The index entry for `wanted`; the variant only matters when asked for."""
    candidates = [
        d
        for d in index.manifests
        if d.media_type in MANIFESTS + INDEXES
        and d.platform
        and d.platform.os == wanted.os
        and normal_arch(d.platform.architecture) == wanted.architecture
        and (not wanted.variant or d.platform.variant in (wanted.variant, ""))
    ]
    if not candidates:
        offered = ", ".join(sorted({str(d.platform) for d in index.manifests if d.platform}))
        raise UserError(f"no image for platform {wanted} (available: {offered or 'none'})")
    # An exact variant match beats an entry that names none.
    candidates.sort(key=lambda d: (d.platform.variant if d.platform else "") != wanted.variant)
    return candidates[0]


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{what} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise UserError(f"{what} is not a JSON object")
    return data


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise UserError(f"manifest field {key!r} missing or not a list")
    return value


def _descriptor(data: Any) -> Descriptor:
    if not isinstance(data, dict):
        raise UserError("manifest has a malformed descriptor")
    media_type, size = data.get("mediaType", ""), data.get("size")
    if not isinstance(media_type, str):
        raise UserError("descriptor mediaType is not a string")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size < MAX_SIZE:
        raise UserError(f"descriptor has an invalid size {size!r}")
    platform = data.get("platform")
    annotations = data.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise UserError("descriptor annotations are not an object")
    return Descriptor(
        media_type=media_type,
        digest=digests.parse(data.get("digest", "")),
        size=size,
        platform=_platform(platform) if platform is not None else None,
        annotations={str(k): str(v) for k, v in annotations.items()},
    )


def _platform(data: Any) -> Platform:
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k, ""), str) for k in ("os", "architecture", "variant")
    ):
        raise UserError("descriptor has a malformed platform")
    return Platform(data.get("os", ""), data.get("architecture", ""), data.get("variant", ""))

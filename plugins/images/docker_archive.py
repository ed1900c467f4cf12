"""docker-archive tarballs (`docker save`): manifest.json, a config file, layer tars.

Such an archive has no manifest blob: one is made (OCI, canonical JSON) from
the layers as found, their digests computed from their bytes, so the image
imports, verifies and saves like any other.
"""

from __future__ import annotations

import hashlib
import json

from hypercontainer.errors import UserError

from . import digests, manifest
from .archive_source import ArchiveSource, Loadable, member_named, normal, read_chunks, tagged
from .build import LAYER_TAR, canonical_json
from .decompress import sniff
from .manifest import Descriptor
from .reference import parse


def loadables(source: ArchiveSource, default_registry: str) -> list[Loadable]:
    """One image per entry of manifest.json."""
    raw = source.file(source.members["manifest.json"]).read(manifest.MAX_MANIFEST_SIZE + 1)
    try:
        entries = json.loads(raw)
    except ValueError as e:
        raise UserError(f"archive manifest.json is not valid JSON: {e}") from None
    if not isinstance(entries, list):
        raise UserError("archive manifest.json is not a list")
    return [_docker_image(source, entry, default_registry) for entry in entries]


def _docker_image(source: ArchiveSource, entry: object, default_registry: str) -> Loadable:
    if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
        raise UserError("archive manifest.json has a malformed entry")
    layers = entry.get("Layers") or []
    tags = entry.get("RepoTags") or []
    if not isinstance(layers, list) or not isinstance(tags, list):
        raise UserError("archive manifest.json has malformed Layers or RepoTags")
    config_info = member_named(source, entry["Config"])
    if config_info.size > manifest.MAX_CONFIG_SIZE:
        raise UserError("image config too large")
    config = source.file(config_info).read()
    config_digest = digests.of_bytes(config)
    source.paths[config_digest] = normal(entry["Config"])
    layer_descriptors = [_docker_layer(source, name) for name in layers]
    body = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": manifest.OCI_MANIFEST,
            "config": {
                "mediaType": manifest.OCI_CONFIG,
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [d.to_json() for d in layer_descriptors],
        }
    )
    parsed = manifest.parse(body)
    if not isinstance(parsed, manifest.Manifest):  # what we wrote above is one
        raise UserError("archive entry did not make an image manifest")
    names = [str(tagged(parse(str(t), default_registry))) for t in tags]
    return Loadable(body, digests.of_bytes(body), parsed, names)


def _docker_layer(source: ArchiveSource, name: object) -> Descriptor:
    info = member_named(source, name)
    compression = sniff(source.file(info).read(4))
    hasher = hashlib.sha256()
    for chunk in read_chunks(source.file(info)):
        hasher.update(chunk)
    digest = f"sha256:{hasher.hexdigest()}"
    source.paths[digest] = normal(info.name)
    media_type = f"{LAYER_TAR}+{compression}" if compression else LAYER_TAR
    return Descriptor(media_type, digest, info.size)

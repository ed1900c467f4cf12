"""The image configuration blob: what a container needs, and the layers' diff ids."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypercontainer.drivers import ImageConfig
from hypercontainer.errors import UserError

from . import digests
from .manifest import MAX_CONFIG_SIZE


@dataclass(frozen=True)
class ParsedConfig:
    container: ImageConfig
    diff_ids: tuple[str, ...]  # digests of the uncompressed layers, bottom first
    created: str
    os: str
    architecture: str


def parse(body: bytes) -> ParsedConfig:
    if len(body) > MAX_CONFIG_SIZE:
        raise UserError(f"image config larger than {MAX_CONFIG_SIZE} bytes")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"image config is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise UserError("image config is not a JSON object")
    rootfs = data.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise UserError("image config has no rootfs of type 'layers'")
    diff_ids = rootfs.get("diff_ids")
    if not isinstance(diff_ids, list):
        raise UserError("image config rootfs.diff_ids is not a list")
    return ParsedConfig(
        container=_container({} if data.get("config") is None else data["config"]),
        diff_ids=tuple(digests.parse(d) for d in diff_ids),
        created=_string(data, "created"),
        os=_string(data, "os"),
        architecture=_string(data, "architecture"),
    )


def _container(section: Any) -> ImageConfig:
    if not isinstance(section, dict):
        raise UserError("image config 'config' is not an object")
    ports = section.get("ExposedPorts") or {}
    labels = section.get("Labels") or {}
    if not isinstance(ports, dict) or not isinstance(labels, dict):
        raise UserError("image config has malformed ExposedPorts or Labels")
    return ImageConfig(
        entrypoint=_strings(section, "Entrypoint"),
        cmd=_strings(section, "Cmd"),
        env=_strings(section, "Env"),
        working_dir=_string(section, "WorkingDir"),
        user=_string(section, "User"),
        exposed_ports=sorted(str(p) for p in ports),
        labels={str(k): str(v) for k, v in labels.items()},
        stop_signal=_string(section, "StopSignal"),
    )


def _strings(section: dict[str, Any], key: str) -> list[str]:
    value = section.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserError(f"image config {key} is not a list of strings")
    return value


def _string(section: dict[str, Any], key: str) -> str:
    value = section.get(key) or ""
    if not isinstance(value, str):
        raise UserError(f"image config {key} is not a string")
    return value

"""The oci images driver's settings: the [oci] table (also spelt [registry], as older
configuration files do)."""

from __future__ import annotations

from hypercontainer.driver_settings import DriverSettings
from pydantic import Field


class OciSettings(DriverSettings):
    default_registry: str = "docker.io"
    insecure_registries: list[str] = Field(default_factory=list)
    platform: str = "linux/amd64"
    concurrent_downloads: int = 3
    concurrent_uploads: int = 3
    # A blob up to this size is pushed in one request; a larger one in chunks of it.
    push_chunk_size: int = Field(default=32 * 2**20, ge=2**16)
    # A layer may unpack to at most max_compression_ratio times its blob size
    # (blobs under 1 MiB count as 1 MiB), and never beyond max_layer_size bytes.
    max_layer_size: int = 16 * 2**30
    max_compression_ratio: int = 100

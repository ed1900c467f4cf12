"""Configuration: a TOML file, overridden by the environment.

Lookup order, later wins: built-in defaults, /etc/hypercontainer/config.toml,
$XDG_CONFIG_HOME/hypercontainer/config.toml (or the file named by --config or
$HYPERCONTAINER_CONFIG instead of both), then HYPERCONTAINER_* variables:
HYPERCONTAINER_HYPERVISOR=qemu sets a top-level key, a double underscore
reaches into a section (HYPERCONTAINER_BRIDGE__SUBNET=10.9.0.0/24).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import UserError
from .paths import (
    ENV_PREFIX,
    SYSTEM_FILE,
    default_cache_root,
    default_run_root,
    default_state_root,
    read_config,
    user_config_file,
)
from .specfields import MAX_FILE_BYTES


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GuestConfig(Section):
    kernel: Path | None = None  # None: a Debian kernel fetched into the cache
    initrd: Path | None = None  # None: built by the project, cached by hash
    kernel_package: str | None = None  # e.g. linux-image-6.1.0-47-amd64
    boot_timeout: float = 120.0


class QemuConfig(Section):
    binary: str = "qemu-system-x86_64"
    accelerator: str = "auto"  # auto | kvm | tcg
    # TCG translation cache per VM, in MiB; None: QEMU's own default
    tcg_cache_mb: int | None = Field(default=64, ge=8, le=4096)
    stop_timeout: float = 10.0
    # Start pods from a VM template of their shape (docs/guest.md); false: always boot.
    template: bool = True


class CloudHypervisorConfig(Section):
    binary: str = "cloud-hypervisor"
    virtiofsd: str = "virtiofsd"
    stop_timeout: float = 10.0


class BridgeConfig(Section):
    name: str = "hyper0"
    subnet: str = "192.168.123.0/24"
    host_ip: str = "0.0.0.0"  # where port mappings listen by default: every local address


class UserNetConfig(Section):
    host_ip: str = "127.0.0.1"


class CniConfig(Section):
    conf_dir: Path = Path("/etc/cni/net.d")  # network configuration lists (*.conflist)
    bin_dir: str = "/usr/lib/cni:/opt/cni/bin"  # plugin directories, as CNI_PATH: ':'-separated
    # The conflist (by its "name") pods join; the default one is written to conf_dir if absent.
    network: str = "hypercontainer"
    cache_dir: Path = Path("/var/lib/cni")  # libcni's layout: results/<network>-<id>-<ifname>
    host_ip: str = "0.0.0.0"  # where port mappings listen by default: every local address


class ImagesConfig(Section):
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


class FetchConfig(Section):
    """`files[].uri` over http(s), fetched by hyperctl (core/fetch.py)."""

    proxy: str = ""  # e.g. http://proxy.lan:3128; "": the environment's http(s)_proxy, no_proxy
    ca_file: Path | None = None  # PEM certificates to trust for https; None: the system's
    max_bytes: int = Field(default=MAX_FILE_BYTES, ge=1, le=MAX_FILE_BYTES)
    timeout: float = Field(default=30.0, gt=0, le=3600)


class Config(Section):
    hypervisor: str = "qemu"
    network: str = "user"
    images: str = "oci"
    state_root: Path = Field(default_factory=default_state_root)
    run_root: Path = Field(default_factory=default_run_root)
    cache_root: Path = Field(default_factory=default_cache_root)
    socket_group: str | None = None
    log_level: str = "info"
    disabled_hooks: list[str] = Field(default_factory=list)
    guest: GuestConfig = Field(default_factory=GuestConfig)
    qemu: QemuConfig = Field(default_factory=QemuConfig)
    cloud_hypervisor: CloudHypervisorConfig = Field(default_factory=CloudHypervisorConfig)
    bridge: BridgeConfig = Field(default_factory=BridgeConfig)
    user_network: UserNetConfig = Field(default_factory=UserNetConfig)
    cni: CniConfig = Field(default_factory=CniConfig)
    registry: ImagesConfig = Field(default_factory=ImagesConfig)
    fetch: FetchConfig = Field(default_factory=FetchConfig)

    @property
    def socket_path(self) -> Path:
        return self.run_root / "hyperd.sock"

    @property
    def database_path(self) -> Path:
        return self.state_root / "state.db"


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        node = overrides
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = _env_value(value)
    return overrides


def _env_value(value: str) -> Any:
    # Lists are written comma-separated, e.g. insecure registries.
    return value.split(",") if "," in value else value


def _describe(error: ValidationError, source: str) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"config ({source}): {where}: {first['msg']}"


def load(path: str | os.PathLike | None = None, environ: dict[str, str] | None = None) -> Config:
    """The effective configuration."""
    environ = dict(os.environ if environ is None else environ)
    explicit = path or environ.get(ENV_PREFIX + "CONFIG")
    if explicit:
        data, source = read_config(Path(explicit), required=True), str(explicit)
    else:
        data = _merge(read_config(SYSTEM_FILE, False), read_config(user_config_file(), False))
        source = "config files"
    data = _merge(data, _env_overrides(environ))
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        raise UserError(_describe(e, source)) from None

"""Configuration: a TOML file, overridden by the environment.

Lookup order, later wins: built-in defaults, /etc/hypercontainer/config.toml,
$XDG_CONFIG_HOME/hypercontainer/config.toml (or the file named by --config or
$HYPERCONTAINER_CONFIG instead of both), then HYPERCONTAINER_* variables:
HYPERCONTAINER_HYPERVISOR=qemu sets a top-level key, a double underscore
reaches into a table (HYPERCONTAINER_BRIDGE__SUBNET=10.9.0.0/24).

The core keeps only its own keys here; each driver's table ([qemu], [bridge],
[cloud-hypervisor], a third party's) is that driver's, checked by the
settings model it declares (core/driver_settings.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from .errors import UserError
from .paths import (
    ENV_PREFIX,
    KNOWN_KEYS,
    SYSTEM_FILE,
    check_keys,
    default_cache_root,
    default_run_root,
    default_state_root,
    read_config,
    table_name,
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


class FetchConfig(Section):
    """`files[].uri` over http(s), fetched by hyperctl (core/fetch.py)."""

    proxy: str = ""  # e.g. http://proxy.lan:3128; "": the environment's http(s)_proxy, no_proxy
    ca_file: Path | None = None  # PEM certificates to trust for https; None: the system's
    max_bytes: int = Field(default=MAX_FILE_BYTES, ge=1, le=MAX_FILE_BYTES)
    timeout: float = Field(default=30.0, gt=0, le=3600)


class AdmissionConfig(Section):
    """What a pod may take of the host's memory (core/admission.py)."""

    enabled: bool = True
    reserve_mb: int = Field(default=512, ge=0)  # host memory never given to pods
    # A VM's host memory beyond its guest's: the TCG translation cache ([qemu]
    # tcg_cache_mb) and QEMU itself, measured at about 100 MiB (docs/benchmarks.md).
    vm_overhead_mb: int = Field(default=100, ge=0)


class LogsConfig(Section):
    """Container logs (core/logs.py), rotated as Docker's `local` log driver does."""

    max_size_mb: int = Field(default=20, ge=1, le=1 << 20)  # a file, before it rotates
    max_files: int = Field(default=5, ge=1, le=100)  # kept per container, the current one too


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
    fetch: FetchConfig = Field(default_factory=FetchConfig)
    admission: AdmissionConfig = Field(default_factory=AdmissionConfig)
    logs: LogsConfig = Field(default_factory=LogsConfig)
    # Every other table is a driver's settings, by the driver's name ([qemu], [bridge], a
    # third party's [mydriver]): kept as written, validated by that driver's own model
    # when it loads (driver_settings.py).
    tables: dict[str, dict[str, Any]] = Field(default_factory=dict)
    _source: str = PrivateAttr(default="the defaults")

    def table(self, driver: str) -> dict[str, Any]:
        """The table of the driver called `driver` (empty if the configuration has none)."""
        return dict(self.tables.get(table_name(driver), {}))

    def with_table(self, driver: str, **values: Any) -> Config:
        """A copy whose table of `driver` also sets `values` (for tests and the kit)."""
        tables = {**self.tables, table_name(driver): {**self.table(driver), **values}}
        copy = self.model_copy(update={"tables": tables})
        copy._source = self._source
        return copy

    @property
    def source(self) -> str:
        """Where the configuration came from, for error messages."""
        return self._source

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


def describe(error: ValidationError, source: str, table: str = "") -> str:
    """The first problem pydantic found, as one line naming the key: `qemu.binary: ...`."""
    first = error.errors()[0]
    where = ".".join(str(p) for p in ([table] if table else []) + list(first["loc"]))
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
    environment = _env_overrides(environ)
    check_keys(environment, f"config ({ENV_PREFIX}* variables)")
    data = _merge(data, environment)
    core = {key: value for key, value in data.items() if key in KNOWN_KEYS}
    tables: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        if key not in KNOWN_KEYS:  # a driver's table (check_keys refused anything else)
            tables[table_name(key)] = _merge(tables.get(table_name(key), {}), value)
    try:
        config = Config.model_validate({**core, "tables": tables})
    except ValidationError as e:
        raise UserError(describe(e, source)) from None
    config._source = source
    return config

"""Where things live, computed without importing anything heavy.

hyperctl needs only the daemon's socket path to do its work; this module
gives it that from the same files and variables the full configuration
(config.py) reads, so hyperctl starts fast.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

ENV_PREFIX = "HYPERCONTAINER_"
SYSTEM_FILE = Path("/etc/hypercontainer/config.toml")


def _is_root() -> bool:
    return os.geteuid() == 0


def _xdg(var: str, fallback: str) -> Path:
    return Path(os.environ.get(var) or Path.home() / fallback)


def default_state_root() -> Path:
    if _is_root():
        return Path("/var/lib/hypercontainer")
    return _xdg("XDG_DATA_HOME", ".local/share") / "hypercontainer"


def default_run_root() -> Path:
    if _is_root():
        return Path("/run/hypercontainer")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime) / "hypercontainer" if runtime else default_state_root() / "run"


def default_cache_root() -> Path:
    if _is_root():
        return Path("/var/cache/hypercontainer")
    return _xdg("XDG_CACHE_HOME", ".cache") / "hypercontainer"


def user_config_file() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config") / "hypercontainer" / "config.toml"


# The core's own top-level keys and tables (config.Config's fields but `tables`; a unit
# test keeps the two in step): hyperctl refuses others without importing the full config.
KNOWN_KEYS = frozenset(
    {
        "hypervisor",
        "network",
        "images",
        "state_root",
        "run_root",
        "cache_root",
        "socket_group",
        "log_level",
        "disabled_hooks",
        "guest",
        "fetch",
        "admission",
        "logs",
    }
)
# Every other table is the settings of the driver it names ([qemu], [bridge], [mydriver]).
# Driver tables that had other names in older configuration files:
LEGACY_TABLES = {"registry": "oci", "user_network": "user", "user-network": "user"}
DRIVER_GROUPS = ("hypercontainer.hypervisors", "hypercontainer.network", "hypercontainer.images")


def table_name(key: str) -> str:
    """The driver a configuration table belongs to: `_` and `-` are one (environment
    variables cannot spell `-`), older names are their driver's."""
    return LEGACY_TABLES.get(key, key).replace("_", "-")


def driver_names() -> set[str]:
    """Every installed driver's name, from the distributions' metadata (imports nothing)."""
    from importlib.metadata import entry_points

    found = entry_points()
    return {
        entry.name.replace("_", "-")
        for group in DRIVER_GROUPS
        for entry in found.select(group=group)
    }


def check_keys(data: dict, where: str) -> None:
    """Refuse a top-level key that is neither the core's nor an installed driver's table."""
    unknown = sorted(k for k in data if k not in KNOWN_KEYS)
    if not unknown:
        return
    from .errors import UserError

    tables = [k for k in unknown if isinstance(data[k], dict)]
    keys = [k for k in unknown if k not in tables]
    if keys:
        raise UserError(f"{where}: unknown key {keys[0]!r} (keys: {', '.join(sorted(KNOWN_KEYS))})")
    names = driver_names()
    for key in tables:
        if table_name(key) not in names:
            raise UserError(
                f"{where}: unknown table [{key}]: no installed driver is called "
                f"{table_name(key)!r} (drivers: {', '.join(sorted(names))})"
            )


def _config_files(config_file: str | None) -> list[tuple[Path, bool]]:
    """(file, must exist) in the order config.load() reads them."""
    explicit = config_file or os.environ.get(ENV_PREFIX + "CONFIG")
    if explicit:
        return [(Path(explicit), True)]
    return [(SYSTEM_FILE, False), (user_config_file(), False)]


def read_config(path: Path, required: bool) -> dict:
    """One configuration file's TOML; UserError if it is missing (when required),
    unreadable, not TOML, or names a key the configuration does not have."""
    from .errors import UserError

    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        if required:
            raise UserError(f"config file {path} does not exist") from None
        return {}
    except OSError as e:
        raise UserError(f"config file {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"config file {path} is not valid TOML: {e}") from None
    check_keys(data, f"config file {path}")
    return data


def check_config(config_file: str | None = None) -> None:
    """Refuse a configuration hyperd would refuse to read, before any command runs."""
    for path, required in _config_files(config_file):
        read_config(path, required)


def _setting(key: str, config_file: str | None) -> str | None:
    """One top-level setting, by the precedence config.load() applies."""
    if ENV_PREFIX + key.upper() in os.environ:
        return os.environ[ENV_PREFIX + key.upper()]
    value = None
    for path, required in _config_files(config_file):  # later files win
        found = read_config(path, required).get(key)
        value = found if found is not None else value
    return None if value is None else str(value)


def run_root(config_file: str | None = None) -> Path:
    return Path(_setting("run_root", config_file) or default_run_root())


def state_root(config_file: str | None = None) -> Path:
    return Path(_setting("state_root", config_file) or default_state_root())


def cache_root(config_file: str | None = None) -> Path:
    return Path(_setting("cache_root", config_file) or default_cache_root())


def own_paths(config_file: str | None = None) -> list[Path]:
    """hyperd's own directories (state, runtime, cache), which no container may be given."""
    return [state_root(config_file), run_root(config_file), cache_root(config_file)]


def socket_path(config_file: str | None = None) -> Path:
    return run_root(config_file) / "hyperd.sock"

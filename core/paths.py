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


def _setting(key: str, config_file: str | None) -> str | None:
    """One top-level setting, by the precedence config.load() applies."""
    if ENV_PREFIX + key.upper() in os.environ:
        return os.environ[ENV_PREFIX + key.upper()]
    explicit = config_file or os.environ.get(ENV_PREFIX + "CONFIG")
    files = [Path(explicit)] if explicit else [user_config_file(), SYSTEM_FILE]
    for path in files:
        try:
            with path.open("rb") as f:
                value = tomllib.load(f).get(key)
        except (OSError, tomllib.TOMLDecodeError):
            continue
        if value is not None:
            return str(value)
    return None


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

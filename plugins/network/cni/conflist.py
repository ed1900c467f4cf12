"""CNI network configuration lists: found by name in a directory, checked, or the default.

As libcni reads them: `*.conflist` files hold a list ({"name", "cniVersion",
"plugins": [...]}), `*.conf` and `*.json` one plugin's configuration, which
becomes a list of one. Files are read in name order; an empty network name
means the first file's network.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypercontainer.errors import UserError
from hypercontainer.log import get_logger

SUFFIXES = (".conflist", ".conf", ".json")
# Result formats this driver reads: 0.3.x and 0.4.0 share one, 1.0.0 drops "version".
SUPPORTED = ("1.0.0", "0.4.0", "0.3.1", "0.3.0")
# A plugin type names a file in the plugin directories: no path of its own.
PLUGIN_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}")
MAX_FILE = 1 << 20

DEFAULT_NETWORK = "hypercontainer"  # cni.network's default: the list written if absent
DEFAULT_FILE = "hypercontainer.conflist"
DEFAULT_BRIDGE = "hc-cni0"
DEFAULT_SUBNET = "10.123.0.0/16"


@dataclass(frozen=True)
class NetworkList:
    name: str
    cni_version: str
    plugins: list[dict[str, Any]]
    disable_check: bool = False
    source: str = ""  # the file it came from, for messages
    text: str = field(default="", repr=False)  # as read: what DEL must be given again

    @property
    def checkable(self) -> bool:
        """CHECK exists from spec 0.4.0 on, unless the list turns it off."""
        return not self.disable_check and self.cni_version in ("1.0.0", "0.4.0")


def parse(text: str, source: str) -> NetworkList:
    """A network list from a file's text (a list, or one plugin's config); checked."""
    where = f"CNI config {source}"
    try:
        data = json.loads(text)
    except ValueError as e:
        raise UserError(f"{where}: not JSON ({e})") from None
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a JSON object")
    if "plugins" not in data and "type" in data:  # a single plugin's .conf
        data = {"name": data.get("name"), "cniVersion": data.get("cniVersion"), "plugins": [data]}
    name, version, plugins = data.get("name"), data.get("cniVersion"), data.get("plugins")
    if not isinstance(name, str) or not name or len(name) > 128 or "/" in name:
        raise UserError(f"{where}: 'name' must be a short name (no '/')")
    if version not in SUPPORTED:
        raise UserError(
            f"{where}: cniVersion {str(version)[:20]!r} is not supported ({', '.join(SUPPORTED)})"
        )
    if not isinstance(plugins, list) or not plugins:
        raise UserError(f"{where}: 'plugins' must be a non-empty list")
    for index, plugin in enumerate(plugins):
        kind = plugin.get("type") if isinstance(plugin, dict) else None
        if not isinstance(kind, str):
            raise UserError(f"{where}: plugins[{index}] must be an object with a 'type'")
        if not PLUGIN_TYPE.fullmatch(kind):
            raise UserError(
                f"{where}: plugins[{index}].type {str(kind)[:40]!r} is not a plugin name"
            )
    disable_check = data.get("disableCheck", False)
    return NetworkList(
        name, version, plugins, disable_check is True or disable_check == "true", source, text
    )


def find(conf_dir: Path, name: str) -> NetworkList | None:
    """The list called `name` (the first one if `name` is empty) in conf_dir, if any."""
    for path in _files(conf_dir):
        text = _read(path)
        try:
            data = json.loads(text)
        except ValueError:
            get_logger().warning("CNI config is not JSON; skipped", path=str(path))
            continue
        if isinstance(data, dict) and (not name or data.get("name") == name):
            return parse(text, str(path))
    return None


def names(conf_dir: Path) -> list[str]:
    """Every network name conf_dir offers (for an error that lists them)."""
    found = []
    for path in _files(conf_dir):
        try:
            data = json.loads(_read(path))
        except (ValueError, UserError):
            continue
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            found.append(data["name"])
    return found


def _files(conf_dir: Path) -> list[Path]:
    try:
        entries = sorted(conf_dir.iterdir())
    except FileNotFoundError:
        return []
    except OSError as e:
        raise UserError(f"CNI conf_dir {conf_dir}: {e.strerror}") from None
    return [p for p in entries if p.suffix in SUFFIXES and p.is_file()]


def _read(path: Path) -> str:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE + 1)
    except OSError as e:
        raise UserError(f"CNI config {path}: {e.strerror}") from None
    if len(data) > MAX_FILE:
        raise UserError(f"CNI config {path}: larger than {MAX_FILE} bytes")
    return data.decode("utf-8", "replace")


def default(name: str, data_dir: Path) -> dict[str, Any]:
    """bridge + host-local + portmap: pods on one bridge, NAT out, published ports."""
    return {
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": DEFAULT_BRIDGE,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": DEFAULT_SUBNET}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(data_dir),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
        ],
    }


def write_default(conf_dir: Path, name: str, data_dir: Path) -> NetworkList:
    """Write the default list as conf_dir/hypercontainer.conflist (never over another file)."""
    path = conf_dir / DEFAULT_FILE
    if path.exists():
        raise UserError(
            f"CNI conf_dir {conf_dir}: {DEFAULT_FILE} exists but holds no network named {name!r}"
        )
    text = json.dumps(default(name, data_dir), indent=2) + "\n"
    conf_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
    temporary = path.with_name(f".{DEFAULT_FILE}.{os.getpid()}")
    temporary.write_text(text)
    os.replace(temporary, path)
    get_logger().info("wrote the default CNI network", path=str(path))
    return parse(text, str(path))

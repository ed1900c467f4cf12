"""The result of ADD, cached where libcni keeps it: CHECK and DEL are given it back.

`<cache_dir>/results/<network>-<container id>-<ifname>`, in libcni's
"cniCacheV1" format, so CNI tools (cnitool, containerd) read our entries as
their own.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypercontainer.log import get_logger

KIND = "cniCacheV1"


@dataclass(frozen=True)
class ResultCache:
    cache_dir: Path

    def path(self, network: str, container_id: str, ifname: str) -> Path:
        return self.cache_dir / "results" / f"{network}-{container_id}-{ifname}"

    def write(
        self,
        network: str,
        container_id: str,
        ifname: str,
        netns: str,
        config_text: str,
        capability_args: dict[str, Any],
        result: dict[str, Any],
    ) -> None:
        path = self.path(network, container_id, ifname)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        entry = {
            "kind": KIND,
            "containerId": container_id,
            "ifName": ifname,
            "networkName": network,
            "netns": netns,
            "config": base64.b64encode(config_text.encode()).decode(),
            "capabilityArgs": capability_args,
            "result": result,
        }
        temporary = _temporary(path)
        with open(temporary, "w") as file:
            json.dump(entry, file)
            file.flush()
            os.fsync(file.fileno())  # the record of what CNI allocated: must survive a crash
        os.replace(temporary, path)

    def result(self, network: str, container_id: str, ifname: str) -> dict[str, Any] | None:
        """The cached result, or None if ADD never finished (or the entry is unreadable)."""
        path = self.path(network, container_id, ifname)
        try:
            entry = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            get_logger().warning("unreadable CNI cache entry", path=str(path), error=str(e))
            return None
        result = entry.get("result") if isinstance(entry, dict) else None
        return result if isinstance(result, dict) else None

    def remove(self, network: str, container_id: str, ifname: str) -> None:
        """Remove the entry, and what a write cut short (hyperd killed) left of one."""
        path = self.path(network, container_id, ifname)
        path.unlink(missing_ok=True)
        _temporary(path).unlink(missing_ok=True)


def _temporary(path: Path) -> Path:
    """Where an entry is written before it is renamed into place."""
    return path.with_name(f".{path.name}.tmp")

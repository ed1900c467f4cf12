"""Running one CNI plugin as the CNI spec says: a binary found in CNI_PATH, its
parameters in CNI_* variables, its network configuration on stdin, its result
(or an error object) on stdout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypercontainer.errors import DriverError, UserError

TIMEOUT = 120.0  # seconds for one plugin (iptables can wait on its lock)
MAX_MESSAGE = 300


class PluginError(DriverError):
    """A plugin failed; the message is one line, in the plugin's own words."""


@dataclass(frozen=True)
class Invocation:
    """What every plugin of one operation on one pod is told (CNI_* variables)."""

    container_id: str
    netns: str
    ifname: str
    path: str  # CNI_PATH: plugin directories, ':'-separated

    def environment(self, command: str) -> dict[str, str]:
        # Plugins run other programs (iptables, the IPAM plugin): keep PATH and the rest.
        return {
            **os.environ,
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": self.container_id,
            "CNI_NETNS": self.netns,
            "CNI_IFNAME": self.ifname,
            "CNI_PATH": self.path,
        }


def find(kind: str, path: str) -> Path:
    """The plugin binary `kind` in the first CNI_PATH directory that has it."""
    for directory in path.split(":"):
        candidate = Path(directory) / kind
        if directory and candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise UserError(
        f"CNI plugin {kind!r} not found in {path} (cni.bin_dir; Debian's "
        "containernetworking-plugins installs them in /usr/lib/cni)"
    )


def run(command: str, config: dict[str, Any], invocation: Invocation) -> dict[str, Any] | None:
    """Run the plugin `config["type"]` with `command` (ADD, DEL, CHECK); ADD's result."""
    kind = config["type"]
    binary = find(kind, invocation.path)
    try:
        done = subprocess.run(
            # The plugin dies with hyperd (setpriv sets its parent-death signal): a DEL by
            # the next hyperd must not race an orphaned ADD still allocating.
            ["setpriv", "--pdeathsig", "KILL", "--", str(binary)],
            input=json.dumps(config).encode(),
            capture_output=True,
            env=invocation.environment(command),
            timeout=TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise DriverError("the cni network needs setpriv (util-linux)") from None
    except subprocess.TimeoutExpired:
        raise PluginError(
            f"CNI plugin {kind} ({command}) did not finish in {TIMEOUT:g} s"
        ) from None
    if done.returncode != 0:
        raise PluginError(f"CNI plugin {kind} ({command}) failed: {_explain(done)}")
    if command != "ADD":
        return None
    try:
        result = json.loads(done.stdout)
    except ValueError:
        raise PluginError(f"CNI plugin {kind} (ADD) printed no result") from None
    if not isinstance(result, dict):
        raise PluginError(f"CNI plugin {kind} (ADD) printed no result object")
    return result


def _explain(done: subprocess.CompletedProcess) -> str:
    """The spec's error object ({"code", "msg", "details"}) as one line, else stderr's end."""
    try:
        error = json.loads(done.stdout)
    except ValueError:
        error = None
    if isinstance(error, dict) and error.get("msg"):
        text = str(error["msg"])
        if error.get("details"):
            text += f": {error['details']}"
    else:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        text = lines[-1] if lines else _ending(done.returncode)
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def _ending(returncode: int) -> str:
    """How a plugin that said nothing ended: its exit code, or the signal that killed it."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"

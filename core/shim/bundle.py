"""What the shim leaves in a task's bundle for the next shim process that needs it: which
hyperd pod and container the task is, so `delete` can clean up after a shim that died."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

RECORD = "hypercontainer.json"
CONFIG = "hypercontainer-config"  # the config file `start` was given (runtime options)


@dataclass
class TaskRecord:
    pod: str | None
    container: str  # "" while the sandbox's pod is being made
    sandbox: bool
    config: str | None
    vm_pid: int = 0

    def save(self, bundle: str) -> None:
        path = os.path.join(bundle, RECORD)
        with open(path + ".tmp", "w") as f:
            json.dump(asdict(self), f)
        os.replace(path + ".tmp", path)

    @staticmethod
    def load(bundle: str) -> TaskRecord | None:
        try:
            with open(os.path.join(bundle, RECORD)) as f:
                data = json.load(f)
            return TaskRecord(**data)
        except (OSError, ValueError, TypeError):
            return None

    @staticmethod
    def remove(bundle: str) -> None:
        try:
            os.unlink(os.path.join(bundle, RECORD))
        except FileNotFoundError:
            pass


def save_config(bundle: str, config_file: str | None) -> None:
    if config_file:
        with open(os.path.join(bundle, CONFIG), "w") as f:
            f.write(config_file)


def load_config(bundle: str) -> str | None:
    try:
        with open(os.path.join(bundle, CONFIG)) as f:
            return f.read().strip() or None
    except OSError:
        return None

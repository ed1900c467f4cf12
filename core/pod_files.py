"""Where a pod's files live: its state and run directories, its share, its containers'
logs; and hyperd's own directories, which no container may be given."""

from __future__ import annotations

import threading
from pathlib import Path

from .config import Config
from .logs import ContainerLog
from .model import Container
from .podshare import PodShare


class PodFiles:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._logs: dict[str, ContainerLog] = {}  # open logs, by container id
        self._lock = threading.Lock()

    def pod_dir(self, pod_id: str) -> Path:
        return self.config.state_root / "pods" / pod_id

    def run_dir(self, pod_id: str) -> Path:
        return self.config.run_root / "pods" / pod_id

    @property
    def own_paths(self) -> list[Path]:
        """hyperd's own directories, which no container may be given."""
        return [self.config.state_root, self.config.run_root, self.config.cache_root]

    def share(self, pod_id: str) -> PodShare:
        return PodShare(self.pod_dir(pod_id) / "share", protected=self.own_paths)

    @property
    def transfers_dir(self) -> Path:
        """Where image archives sent to or from hyperd are staged."""
        return self.config.state_root / "transfers"

    def log(self, container: Container) -> ContainerLog:
        with self._lock:
            if container.id not in self._logs:
                path = self.pod_dir(container.pod_id) / "logs" / f"{container.id}.log"
                limits = self.config.logs
                self._logs[container.id] = ContainerLog(
                    path, limits.max_size_mb << 20, limits.max_files
                )
            return self._logs[container.id]

    def open_log(self, container_id: str) -> ContainerLog | None:
        """The log already open for `container_id`, if any."""
        return self._logs.get(container_id)

    def forget_log(self, container_id: str, delete: bool = False) -> None:
        with self._lock:
            log_file = self._logs.pop(container_id, None)
        if log_file is not None and delete:
            log_file.remove()

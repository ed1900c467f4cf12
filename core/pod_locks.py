"""One lock per pod: every operation on a pod holds it, so they take turns."""

from __future__ import annotations

import threading
from collections import defaultdict


class PodLocks:
    def __init__(self) -> None:
        self._locks: defaultdict[str, threading.RLock] = defaultdict(threading.RLock)

    def __call__(self, pod_id: str) -> threading.RLock:
        return self._locks[pod_id]

    def forget(self, pod_id: str) -> None:
        self._locks.pop(pod_id, None)

"""Task events back to containerd, as containerd 1.6's own shims send them: a ttrpc
`containerd.services.events.ttrpc.v1.Events/Forward` to `TTRPC_ADDRESS`, the event an
Any whose type_url is the bare message name (`containerd.events.TaskExit`).

The CRI plugin learns of container exits only this way, so events are queued in
order and retried (with a reconnect) until containerd takes them, a few times.
"""

from __future__ import annotations

import queue
import threading
from datetime import UTC, datetime

from ..log import get_logger
from .protogen import Protos
from .status import RpcError
from .ttrpc_client import Client

log = get_logger()

EVENTS_SERVICE = "containerd.services.events.ttrpc.v1.Events"
TOPICS = {
    "TaskCreate": "/tasks/create",
    "TaskStart": "/tasks/start",
    "TaskExit": "/tasks/exit",
    "TaskDelete": "/tasks/delete",
    "TaskExecAdded": "/tasks/exec-added",
    "TaskExecStarted": "/tasks/exec-started",
    "TaskPaused": "/tasks/paused",
    "TaskResumed": "/tasks/resumed",
    "TaskOOM": "/tasks/oom",
}
ATTEMPTS = 5


def timestamp(protos: Protos, when: datetime | None):
    stamp = protos.message("google.protobuf.Timestamp")()
    if when is not None:
        stamp.FromDatetime(when.astimezone(UTC))
    return stamp


class Publisher:
    def __init__(self, protos: Protos, address: str, namespace: str) -> None:
        self.protos, self.address, self.namespace = protos, address, namespace
        self._queue: queue.Queue = queue.Queue()
        self._client: Client | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def publish(self, name: str, **fields) -> None:
        """Queue event `name` (TaskExit, ...) with its fields; timestamps as datetimes."""
        message = self.protos.message(f"containerd.events.{name}")()
        for key, value in fields.items():
            if isinstance(value, datetime):
                getattr(message, key).CopyFrom(timestamp(self.protos, value))
            elif isinstance(value, list):
                getattr(message, key).extend(value)
            elif hasattr(value, "SerializeToString"):
                getattr(message, key).CopyFrom(value)
            else:
                setattr(message, key, value)
        envelope = self.protos.message("containerd.services.events.ttrpc.v1.Envelope")(
            namespace=self.namespace, topic=TOPICS[name]
        )
        envelope.timestamp.CopyFrom(timestamp(self.protos, datetime.now(UTC)))
        envelope.event.type_url = message.DESCRIPTOR.full_name
        envelope.event.value = message.SerializeToString()
        self._queue.put(envelope)

    def flush(self, timeout: float) -> bool:
        """Wait until every queued event was handed over (or given up); False on timeout."""
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self) -> None:
        self._stopping.set()
        self._queue.put(None)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if isinstance(item, threading.Event):
                item.set()
                continue
            self._forward(item)
        if self._client:
            self._client.close()

    def _forward(self, envelope) -> None:
        request = self.protos.message("containerd.services.events.ttrpc.v1.ForwardRequest")(
            envelope=envelope
        )
        for attempt in range(1, ATTEMPTS + 1):
            try:
                if self._client is None:
                    self._client = Client(self.protos, self.address)
                self._client.call(EVENTS_SERVICE, "Forward", request, timeout=5)
                return
            except (OSError, RpcError) as e:
                log.warning(
                    "event not forwarded", topic=envelope.topic, attempt=attempt, error=str(e)
                )
                if self._client:
                    self._client.close()
                    self._client = None
                if self._stopping.wait(attempt * 0.5):  # back off; stop at once on close
                    return
        log.error("event dropped", topic=envelope.topic)

"""A pod session's events, delivered in order by the agent client's delivery thread: one
that fails to apply never stops the next."""

from __future__ import annotations

from hypercontainer.agent.deliveries import Deliveries
from hypercontainer.pod_session import PodSession, SessionCallbacks


def test_a_failing_event_is_logged_and_the_next_one_still_applied() -> None:
    exits: list[tuple[str, int | None]] = []

    def container_exited(container_id: str, code: int | None) -> None:
        if container_id == "bad":
            raise RuntimeError("store is gone")
        exits.append((container_id, code))

    callbacks = SessionCallbacks(
        output=lambda *a: None,
        container_exited=container_exited,
        exec_exited=lambda *a: None,
        vm_lost=lambda *a: None,
        pod_of=lambda container_id: "pod",
    )
    session = PodSession("pod", {}, hypervisor=None, callbacks=callbacks)  # type: ignore[arg-type]
    deliveries = Deliveries("events", hold=1 << 20, limit=1 << 30, on_drained=lambda: None)
    deliveries.put(
        [
            (0, session._event, ({"event": "exit", "container": "bad", "code": 1},)),
            (0, session._event, ({"event": "exit", "container": "good", "code": 0},)),
        ]
    )
    deliveries.close()
    assert deliveries.finished.wait(10)
    assert exits == [("good", 0)]

"""A pod session's event worker: one event that fails to apply never stops the next."""

from __future__ import annotations

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
    )
    session = PodSession("pod", {}, hypervisor=None, callbacks=callbacks)  # type: ignore[arg-type]
    for event in (
        {"event": "exit", "container": "bad", "code": 1},
        {"event": "exit", "container": "good", "code": 0},
        None,
    ):
        session._events.put(event)
    session._handle_events()  # returns at the None that ends the queue
    assert exits == [("good", 0)]

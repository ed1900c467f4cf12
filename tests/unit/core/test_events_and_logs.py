"""Lifecycle events kept for followers, and container logs read from a time on."""

import errno
import os
import threading
from datetime import UTC, datetime, timedelta

from hypercontainer.events import Events
from hypercontainer.hooks import Hooks
from hypercontainer.logs import ContainerLog
from hypercontainer.model import Container, Pod


def test_events_come_from_the_hooks_and_replay_since_a_time():
    events = Events()
    hooks = Hooks(load_entry_points=False)
    hooks.register(events, "events")
    pod = Pod(id="p", name="p", vm_name="vm-x", spec={})
    container = Container(id="c" * 64, name="c", pod_id="p", image="busybox", spec={})
    before = events.follow(since="", follow=False)
    hooks.pod_post_start(pod)
    hooks.container_post_stop(container, 3)
    assert list(before) == []  # no past asked for
    replayed = list(events.follow(since="1970-01-01T00:00:00+00:00", follow=False))
    assert [(e["type"], e["action"]) for e in replayed] == [("pod", "start"), ("container", "die")]
    assert replayed[1]["exit_code"] == 3 and replayed[1]["pod"] == "p"


def test_a_follower_gets_new_events_until_stopped():
    events, stop = Events(), threading.Event()
    seen = []

    def follow():
        for event in events.follow(stop=stop):
            seen.append(event["action"])
            stop.set()

    thread = threading.Thread(target=follow)
    thread.start()
    while thread.is_alive() and not seen:
        events.record("pod", "create", id="p", name="p")  # until the follower is there
        thread.join(0.05)
    thread.join(5)
    assert seen == ["create"]


def test_blocked_events_record_nothing():
    hooks = Hooks(disabled=["events"], load_entry_points=False)
    events = Events()
    hooks.register(events, "events")
    hooks.pod_post_remove(Pod(id="p", name="p", vm_name="v", spec={}))
    assert list(events.follow(since="1970", follow=False)) == []


def test_logs_since_a_time_and_with_their_times(tmp_path):
    log = ContainerLog(tmp_path / "c.log")
    log.append("stdout", b"early\n")
    middle = datetime.now(UTC) + timedelta(microseconds=1)
    while datetime.now(UTC) <= middle:  # the next entry is written strictly later
        pass
    log.append("stderr", b"late\n")
    everything = list(log.read())
    assert [(s, d) for _, s, d in everything] == [("stdout", b"early\n"), ("stderr", b"late\n")]
    assert [d for _, _, d in log.read(since=middle)] == [b"late\n"]
    assert [d for _, _, d in log.read(since=middle, tail=5)] == [b"late\n"]
    assert datetime.fromisoformat(everything[1][0]) >= middle


def test_a_full_disk_drops_whole_entries_and_the_log_stays_readable(tmp_path, monkeypatch):
    log = ContainerLog(tmp_path / "c.log")
    log.append("stdout", b"before\n")
    real_write = os.write

    def half_then_full(fd, data):  # what a disk filling under the write does
        if len(data) > 8:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    log.append("stdout", b"x" * 10000)  # dropped, not raised
    assert log.dropping
    monkeypatch.setattr(os, "write", real_write)
    log.append("stdout", b"after\n")
    assert not log.dropping
    assert [data for _, _, data in log.read()] == [b"before\n", b"after\n"]

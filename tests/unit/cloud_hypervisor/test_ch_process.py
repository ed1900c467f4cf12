"""Helper processes: named by pid and start time, waited for with a pidfd."""

from __future__ import annotations

import os
import signal

from hypercontainer_plugins.hypervisors.cloud_hypervisor.process import (
    Process,
    log_tail,
    start_time,
)


def test_a_process_is_watched_until_it_exits(tmp_path):
    process = Process.spawn(["sleep", "60"], tmp_path / "log")
    assert process.alive()
    assert not process.wait(0.05)
    process.signal(signal.SIGKILL)
    assert process.wait(10)
    assert not process.alive()  # reaped, not a zombie


def test_terminate_escalates_to_kill(tmp_path):
    stubborn = Process.spawn(["sh", "-c", "trap '' TERM; echo ready; sleep 60"], tmp_path / "log")
    stubborn.terminate(grace=0.2)
    assert not stubborn.alive()


def test_a_reused_pid_is_not_our_process(tmp_path):
    mine = Process.spawn(["sleep", "60"], tmp_path / "log")
    impostor = Process(mine.pid, mine.started + 1)
    assert not impostor.alive()
    assert impostor.wait(None)  # returns at once: it is not ours to wait for
    mine.terminate(1)


def test_a_record_survives_a_round_trip(tmp_path):
    process = Process.from_record({"pid": os.getpid(), "started": start_time(os.getpid())})
    assert process.alive()
    assert Process.from_record(process.record()) == process
    assert start_time(2**22 + 1) is None


def test_the_log_tail_is_one_line(tmp_path):
    log = tmp_path / "log"
    log.write_text("first\n\n  Error: no KVM  \n")
    assert log_tail(log) == "first | Error: no KVM"
    assert log_tail(tmp_path / "absent") == ""

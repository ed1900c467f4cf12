"""A container that writes without end takes bounded disk: its log is rotated at
`[logs] max_size_mb` into at most `max_files` files, through the real hyperd and a real
VM, and `hyperctl logs` still gives the newest output in order."""

from __future__ import annotations

import json

import pytest

from tests.support.daemon import announced_pod, rows, wait_for

pytestmark = pytest.mark.vm

LINE = "x" * 100
LINES = 40000  # some 6 MiB of log entries, against 2 files of 1 MiB


def test_a_container_writing_without_end_keeps_its_log_within_the_limits(daemons):
    daemon = daemons("[logs]\nmax_size_mb = 1\nmax_files = 2\n")
    printer = f"yes {LINE} | head -n {LINES}; echo last"
    pod = announced_pod(daemon.hyperctl("run", "-d", "busybox", "sh", "-c", printer).stdout)
    wait_for(
        lambda: [r[3] for r in rows(daemon.hyperctl("list", "container").stdout)] == ["succeeded"],
        timeout=300,
        what="the printing container to end",
    )
    logs = daemon.state_root / "pods" / pod / "logs"
    files = sorted(logs.iterdir())
    assert [f.name.split(".log")[1] for f in files] == ["", ".1"], files
    assert all(f.stat().st_size <= 1 << 20 for f in files)
    for f in files:  # every kept entry whole
        assert all(json.loads(line)["stream"] == "stdout" for line in f.read_text().splitlines())
    shown = daemon.hyperctl("logs", pod).stdout.splitlines()
    assert shown[-1] == "last"
    # entries are the chunks the guest sent: the oldest kept may begin inside a line
    assert LINE.endswith(shown[0]) and set(shown[1:-1]) == {LINE}
    assert 1 << 20 < len(shown) * (len(LINE) + 1) < LINES * (len(LINE) + 1)
    assert daemon.hyperctl("logs", "--tail", "2", pod).stdout == f"{LINE}\nlast\n"

"""A pod the host cannot hold is refused before anything starts, through the real hyperctl
and hyperd: one line saying how much was asked and how much is free, exit code 1, no
pod, no VM, nothing under the daemon's roots."""

from __future__ import annotations

import json
import re

import pytest

from tests.reliability.support import tree
from tests.support.daemon import qemu_pids

pytestmark = pytest.mark.vm

REFUSAL = re.compile(
    r"hyperctl ERROR: not enough memory: the pod needs (\d+) MiB \((\d+) MiB of memory and "
    r"100 MiB for its VM\) but only (\d+) MiB are free \((\d+) MiB available, less the "
    r"reserve of (\d+) MiB and (\d+) MiB promised to pods already started\)\n"
)


def refused(result, memory: int, reserve: int) -> None:
    assert result.returncode == 1, result
    assert result.stdout == ""
    found = REFUSAL.fullmatch(result.stderr)
    assert found, result.stderr
    needs, asked, free, available, reserved, _ = map(int, found.groups())
    assert (needs, asked, reserved) == (memory + 100, memory, reserve)
    assert free < needs and free <= max(available - reserve, 0)


def test_a_pod_beyond_the_reserve_is_refused_and_leaves_nothing(daemons):
    reserve = 1 << 30  # 1 PiB in MiB: no machine has that available
    daemon = daemons(f"[admission]\nreserve_mb = {reserve}\n")
    before = tree(
        daemon.root, skip=lambda p: p.name in ("hyperd.log", "state.db-wal", "state.db-shm")
    )
    refused(daemon.hyperctl("run", "-d", "busybox", "true"), 128, reserve)
    refused(daemon.hyperctl("run", "-d", "--memory", "512", "busybox", "true"), 512, reserve)
    assert daemon.hyperctl("list", "-q", check=True).stdout.split() == []
    assert qemu_pids(daemon.run_root) == []
    after = tree(
        daemon.root, skip=lambda p: p.name in ("hyperd.log", "state.db-wal", "state.db-shm")
    )
    assert after == before


def test_a_pod_larger_than_the_host_is_refused_with_the_default_reserve(daemons):
    daemon = daemons()
    refused(daemon.hyperctl("run", "-d", "--memory", "262144", "busybox", "true"), 262144, 512)
    assert daemon.hyperctl("list", "-q", check=True).stdout.split() == []
    assert qemu_pids(daemon.run_root) == []


def test_a_created_pod_that_does_not_fit_stays_pending_on_start(daemons):
    daemon = daemons("[admission]\nreserve_mb = 1073741824\n")
    podfile = daemon.root / "pod.json"
    podfile.write_text(json.dumps({"id": "waits", "containers": [{"image": "busybox"}]}))
    assert daemon.hyperctl("create", "-p", str(podfile)).stdout == "POD id is waits\n"
    pod = "waits"
    refused(daemon.hyperctl("start", pod), 128, 1 << 30)
    listed = daemon.hyperctl("list", check=True).stdout
    assert re.search(rf"^{re.escape(pod)}\s.*\spending\s", listed, re.M), listed
    assert qemu_pids(daemon.run_root) == []

"""A guest agent that stops answering: its VM is frozen with SIGSTOP under a running pod.

Requests to it end with one line naming the timeout instead of hanging; the
daemon keeps serving everything else meanwhile; `stop` still stops the pod
(killing the frozen QEMU) and leaves no container recorded running in a VM
that is gone. (kill -9 of a pod's QEMU is tested in tests/e2e/test_pod_in_vm.py.)

Slow by nature: the agent client waits 30 s for a signal; `stop`, once its
stop signal timed out, does not ask the silent guest again but has the VMM end
it, which also ends the exec still waiting (its own timeout is 120 s).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from hypercontainer.agent.client import DEFAULT_TIMEOUT, SLOW_TIMEOUT

from tests.reliability.support import SLEEPER
from tests.support.daemon import HYPERCTL, qemu_pids, rows

pytestmark = pytest.mark.vm

BOUND = 600  # seconds: far beyond every timeout of the agent client, short of for ever


def test_a_frozen_guest_gives_timeouts_then_stops(daemons):
    daemon = daemons()
    daemon.hyperctl("run", "-d", "--name", "mute", "busybox", *SLEEPER, check=True)
    (pid,) = qemu_pids(daemon.run_root)
    os.kill(pid, signal.SIGSTOP)
    started = {
        verb: subprocess.Popen(
            [*HYPERCTL, *args],
            env=daemon.env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for verb, args in (
            ("exec", ["exec", "mute", "echo", "unheard"]),
            ("kill", ["kill", "-s", "TERM", "mute"]),
            ("stop", ["stop", "mute"]),
        )
    }
    began = time.monotonic()
    try:
        # The daemon answers everything else while those wait on the silent guest.
        listing = daemon.hyperctl("list", timeout=30, check=True).stdout
        assert rows(listing)[0][3] in ("running", "stopping"), listing
        done = {verb: (p.wait(BOUND), *p.communicate()) for verb, p in started.items()}
    finally:
        for process in started.values():
            if process.poll() is None:
                process.kill()
        if qemu_pids(daemon.run_root):
            os.kill(pid, signal.SIGCONT)

    took = time.monotonic() - began
    code, out, err = done["kill"]
    assert (code, out) == (1, ""), done["kill"]
    timed_out = f"guest agent did not answer signal within {DEFAULT_TIMEOUT:g} s"
    assert err == f"hyperctl ERROR: {timed_out}\n"
    # The exec ends when stop kills the VM under it (or by its own timeout, were stop slower).
    code, out, err = done["exec"]
    assert (code, out) == (1, ""), done["exec"]
    assert err in (
        "hyperctl ERROR: guest agent connection closed during exec\n",
        f"hyperctl ERROR: guest agent did not answer exec within {SLOW_TIMEOUT:g} s\n",
    )
    assert done["stop"] == (0, "Successfully stopped the Pod(mute)\n", ""), done["stop"]
    assert took < SLOW_TIMEOUT, "stop asked the silent guest again instead of ending the VM"

    assert qemu_pids(daemon.run_root) == []
    assert rows(daemon.hyperctl("list").stdout)[0][3] == "succeeded"
    states = {row[1]: row[3] for row in rows(daemon.hyperctl("list", "container").stdout)}
    assert states == {"mute": "failed"}, "a container is recorded running in a VM that is gone"
    daemon.hyperctl("start", "mute", check=True)  # a stopped pod boots again
    assert daemon.hyperctl("exec", "mute", "echo", "heard").stdout == "heard\n"
    daemon.hyperctl("rm", "mute", check=True)
    assert qemu_pids(daemon.run_root) == []

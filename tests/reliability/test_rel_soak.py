"""Soak: one hyperd through a few dozen pod lifetimes (run -d, exec, logs, rm), on the
bridge network inside a network namespace the test makes (so taps, leases and
nftables rules are made and removed every cycle). hyperd's open file descriptors,
threads and memory stay flat, and the host holds nothing of any pod afterwards
(tests/support/soak.py). bench/soak.py runs the same cycle hundreds of times.
"""

from __future__ import annotations

import pytest

from tests.reliability.support import bridged_daemon
from tests.support.soak import Holdings, cycle, flat, footprint

pytestmark = [pytest.mark.vm, pytest.mark.root]

CYCLES = 30
WARM_UP = 5  # cycles before the figures settle (templates, caches, the first bridge)
# Growth allowed from the end of the warm-up to the end. Threads and descriptors are
# counted: none may be kept per pod (the slack is for the moment of sampling: a
# thread that is ending). Memory is Python's: a little growth is the allocator's.
MAX_GROWTH = {"fds": 2, "threads": 2, "rss_mib": 8.0}


@pytest.fixture
def bridged(tmp_path):
    with bridged_daemon(tmp_path, "soak") as made:
        yield made


def test_a_few_dozen_pod_lifetimes_leave_nothing_and_hyperd_stays_flat(bridged):
    daemon, ns = bridged
    pid = daemon.process.pid  # `ip netns exec` became hyperd
    state_root = daemon.config.parent / "state"

    def hyperctl(*args):
        return daemon._run(args)  # the CompletedProcess: a cycle checks each step itself

    def held():
        return footprint(pid, state_root, daemon.run_root, lambda *c: ns.sh(*c))

    cycle(hyperctl, 0)  # the first pod makes what every later pod shares (bridge, table)
    baseline = held()
    assert baseline.qemu == [] and baseline.run_dirs == [] and baseline.state_dirs == []
    samples = []
    for number in range(1, CYCLES + 1):
        cycle(hyperctl, number)
        samples.append(Holdings.of(pid))
        assert held() == baseline, f"after cycle {number}"
    growth = flat(samples, WARM_UP)
    assert all(growth[k] <= MAX_GROWTH[k] for k in growth), (growth, samples)

"""The bridge and cni drivers pass the conformance kit, run in a network namespace of its
own (`unshare --net`): the machine's own network is never touched."""

from __future__ import annotations

import os
import re

import pytest
from hc_netns import host_network

from tests.support.kit import run_kit

pytestmark = pytest.mark.root

IN_OWN_NETNS = ("unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "kit")


def pod_namespaces() -> set[str]:
    return {name for name in os.listdir("/run/netns")} if os.path.isdir("/run/netns") else set()


def test_bridge_and_cni_keep_the_network_contract(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    before, namespaces = host_network(), pod_namespaces()
    done = run_kit(tmp_path, "network=bridge", "network=cni", wrap=IN_OWN_NETNS)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    last = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"20 passed in .*", last), last
    assert host_network() == before
    assert pod_namespaces() <= namespaces  # cni's pod namespaces are all released

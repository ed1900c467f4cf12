import os
import sys
from pathlib import Path

import pytest
from hypercontainer.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hc_netns import NetNs, host_network


@pytest.fixture
def config(tmp_path):
    return Config(
        state_root=tmp_path / "state",
        run_root=tmp_path / "run",
        cache_root=tmp_path / "cache",
        network="bridge",
    )


@pytest.fixture
def netns():
    """A fresh network namespace; the machine's own network must not change meanwhile."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    before = host_network()
    namespaces: list[NetNs] = []

    def make(suffix: str = "") -> NetNs:
        namespaces.append(NetNs.create(suffix))
        return namespaces[-1]

    yield make
    for ns in namespaces:
        ns.delete()
    assert host_network() == before

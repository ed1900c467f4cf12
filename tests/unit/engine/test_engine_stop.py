"""Stopping pods: the hypervisor's own stop timeout, not another hypervisor's."""

from __future__ import annotations

from hypercontainer.model import PodState
from hypercontainer.testing import Engine, fake_config


def test_a_pod_stops_with_its_hypervisors_own_stop_timeout(tmp_path):
    config = (
        fake_config(tmp_path)
        .with_table("fake", stop_timeout=2.5)
        .with_table("qemu", stop_timeout=99)
    )
    engine = Engine(tmp_path, config=config)
    try:
        pod = engine.runtime.run_pod(engine.pod("sleep", "60"))
        assert engine.runtime.stop_pod(pod.id).state == PodState.SUCCEEDED
        assert engine.hypervisor.stops == [2.5]
    finally:
        engine.close()

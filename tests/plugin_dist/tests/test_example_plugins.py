"""A plugin author's own tests: the real engine on fake VMs (hypercontainer.testing), so a
network or hook plugin is tested in milliseconds, without a VM."""

import pytest
from hypercontainer.errors import UserError
from hypercontainer.testing import Engine

audit = pytest.importorskip("hc_example_plugins.audit")
from hc_example_plugins.isolated import IsolatedNetwork  # noqa: E402


def test_a_pod_on_the_isolated_network_has_no_interface(tmp_path):
    engine = Engine(tmp_path, network=IsolatedNetwork)
    try:
        pod = engine.runtime.run_pod(engine.pod("sleep", "60"))
        assert engine.host.vm(pod.id).guest.network.interface is None
        with pytest.raises(UserError, match="cannot publish ports"):
            engine.runtime.run_pod(
                engine.pod("sleep", "60", portmappings=[{"containerPort": 80, "hostPort": 8080}])
            )
    finally:
        engine.close()


def test_the_audit_plugin_records_a_life_and_vetoes_labelled_pods(tmp_path, monkeypatch):
    monkeypatch.setenv("HC_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    engine = Engine(tmp_path, plugins=[audit])
    try:
        pod = engine.runtime.run_pod(engine.pod("sleep", "60"))
        engine.runtime.remove_pod(pod.id)
        with pytest.raises(UserError, match="pods labelled audit/deny are refused"):
            engine.runtime.run_pod(engine.pod("sleep", "60", labels={"audit/deny": "no"}))
        assert engine.runtime.store.pods() == []
    finally:
        engine.close()
    events = (tmp_path / "audit.jsonl").read_text().count("\n")
    assert events == 4  # pod and container started, container stopped, pod removed

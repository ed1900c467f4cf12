"""A third party extends hypercontainer without touching it.

tests/plugin_dist is an ordinary distribution (installed by scripts/install
--test) with an entry point in `hypercontainer.hooks` (an audit listener that
can also veto) and one in `hypercontainer.network` (`isolated`: no NIC).
"""

import json

import pytest
from hypercontainer import drivers

from tests.support.daemon import Hyperd, rows

pytestmark = pytest.mark.vm


def test_a_hook_listener_and_a_network_driver_from_another_distribution(tmp_path):
    assert "isolated" in drivers.installed("network"), "pip install tests/plugin_dist first"
    audit = tmp_path / "audit.jsonl"
    daemon = Hyperd(config='network = "isolated"\n', env={"HC_AUDIT_LOG": str(audit)}).start()
    try:
        daemon.load_busybox()
        info = daemon.api("GET", "/info")
        assert info["selected"]["network"] == "isolated" and "audit" in info["hooks"]

        links = daemon.hyperctl(
            "run", "--rm", "--name", "alone", "busybox", "cat", "/proc/net/dev", check=True
        ).stdout
        interfaces = {line.split(":")[0].strip() for line in links.splitlines() if ":" in line}
        assert interfaces == {"lo"}

        events = [json.loads(line) for line in audit.read_text().splitlines()]
        assert [e["event"] for e in events] == [
            "pod_post_start",
            "container_post_start",
            "container_post_stop",
            "pod_post_remove",
        ]
        assert events[2]["exit_code"] == 0 and events[0]["pod"] == "alone"

        podfile = tmp_path / "denied.json"
        podfile.write_text(
            '{"labels": {"audit/deny": "frozen"}, "containers": [{"image": "busybox"}]}'
        )
        refused = daemon.hyperctl("run", "-d", "-p", str(podfile))
        assert refused.returncode == 1
        assert refused.stderr == (
            "hyperctl ERROR: audit: pods labelled audit/deny are refused (frozen)\n"
        )
        assert rows(daemon.hyperctl("list").stdout) == []
        published = daemon.hyperctl("run", "-d", "--publish", "8080:80", "busybox")
        assert published.returncode == 1
        assert "the isolated network cannot publish ports" in published.stderr
        assert rows(daemon.hyperctl("list").stdout) == []
    finally:
        daemon.cleanup()

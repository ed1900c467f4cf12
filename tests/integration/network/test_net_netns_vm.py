"""A real pod joined to a network namespace someone else configured (what the shim does).

hyperd runs as usual (network "user"); the pod is created through the API
with `netns` naming a namespace this test configured the way CNI would. Its
VM takes eth0's address, MAC, MTU and routes; the peer reaches its server,
it reaches the peer's; `rm` undoes the join and leaves the namespace.
"""

from __future__ import annotations

import pytest
from hc_daemon import eventually
from hc_podns import MTU, configured
from hypercontainer.cli.client import CommandError

from tests.support.daemon import busybox_hyperd

pytestmark = [pytest.mark.vm, pytest.mark.root]

SERVE = "mkdir -p /w && echo served-from-the-vm > /w/index.html && httpd -f -p 80 -h /w"
PEER_SERVER = (
    "import http.server, os, sys; os.chdir(sys.argv[1]); "
    "http.server.ThreadingHTTPServer((sys.argv[2], 8000), "
    "http.server.SimpleHTTPRequestHandler).serve_forever()"
)
FETCH = (
    "import urllib.request, sys\ntry:\n print(urllib.request.urlopen(sys.argv[1], "
    "timeout=5).read().decode())\nexcept OSError as e:\n print(e)"
)


@pytest.fixture
def daemon():
    with busybox_hyperd() as hyperd:
        yield hyperd


def test_pod_joins_a_configured_namespace(daemon, netns, tmp_path):
    ns = configured(netns)
    before = ns.state()
    (tmp_path / "index.html").write_text("served-from-the-peer\n")
    server = ns.peer.popen("python3", "-c", PEER_SERVER, str(tmp_path), ns.gateway)
    try:
        pod = daemon.api(
            "POST",
            "/pods",
            {
                "spec": {
                    "id": "joined",
                    "resource": {"vcpu": 1, "memory": 128},
                    "containers": [
                        {"name": "web", "image": "busybox", "command": ["sh", "-c", SERVE]}
                    ],
                },
                "start": True,
                "netns": str(ns.pod.path),
            },
        )
        assert pod["address"] == ns.address
        assert pod["network"]["netns"] == str(ns.pod.path)

        # The peer reaches the VM at the address the namespace's maker gave eth0.
        eventually(
            lambda: (
                "served-from-the-vm" in ns.peer.sh("python3", "-c", FETCH, f"http://{ns.address}/")
            ),
            "the VM's server",
        )
        # The guest took eth0's MAC, MTU and both routes, and reaches the peer.
        report = daemon.hyperctl(
            "exec",
            "web",
            "sh",
            "-c",
            "cat /sys/class/net/eth0/address /sys/class/net/eth0/mtu; "
            "ip route; ip -6 addr; "
            f"wget -qO- http://{ns.gateway}:8000/",
            check=True,
        ).stdout
        assert ns.mac() in report and f"\n{MTU}\n" in report
        assert f"default via {ns.gateway}" in report
        assert f"10.250.0.0/16 via {ns.gateway}" in report
        assert ns.address6 in report
        assert "served-from-the-peer" in report
    finally:
        server.kill()
        server.wait()
    daemon.hyperctl("rm", "joined", check=True)
    assert ns.state() == before  # tap and mirror gone, eth0 as its maker left it
    assert ns.pod.path.exists()


def test_refused_before_anything_is_made(daemon, netns):
    ns = configured(netns)
    before = ns.state()
    spec = {
        "containers": [{"image": "busybox", "command": ["true"]}],
        "portmappings": [{"containerPort": 80, "hostPort": 8080}],
    }
    with pytest.raises(CommandError, match="published by whoever made the namespace"):
        daemon.api("POST", "/pods", {"spec": spec, "start": True, "netns": str(ns.pod.path)})
    with pytest.raises(CommandError, match="not a network namespace"):
        daemon.api(
            "POST",
            "/pods",
            {
                "spec": {"containers": [{"image": "busybox"}]},
                "start": True,
                "netns": "/etc/hostname",
            },
        )
    assert daemon.api("GET", "/pods") == []
    assert ns.state() == before

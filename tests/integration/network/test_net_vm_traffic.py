"""Real pods, real VMs, real packets: both network drivers end to end through hyperctl.

user: a server in a container answers the host through published ports (one
mapping, a pod file range, one on a chosen host address, and one added with
`hyperctl ports add`), and a
container reaches a server on the host. bridge (inside a namespace the test
made): two pods reach each other, a published port answers, and the last
pod's removal takes the bridge and the nftables table with it.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
import urllib.request

import pytest
from hc_daemon import Daemon, eventually

pytestmark = pytest.mark.vm

# Shell serving `text` over HTTP on `port` with busybox httpd (add -f to keep it in front).
SERVE = "mkdir -p /w{port} && echo {text} > /w{port}/index.html && httpd -p {port} -h /w{port}"


def free_port(count: int = 1) -> int:
    """The first of `count` consecutive free loopback ports."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            first = s.getsockname()[1]
        if first + count > 65535:
            continue
        try:
            probes = [socket.socket() for _ in range(count)]
            for i, probe in enumerate(probes):
                probe.bind(("127.0.0.1", first + i))
            return first
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
    raise AssertionError("no free ports")


def fetch(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode().strip()
    except OSError:
        return None


@pytest.fixture
def user_daemon(tmp_path):
    daemon = Daemon(tmp_path, "user")
    yield daemon
    daemon.stop()


def test_user_published_ports(user_daemon, tmp_path):
    first = free_port(2)
    elsewhere = free_port()  # published on 127.0.0.2 only
    pod_file = tmp_path / "ranges.pod"
    pod_file.write_text(
        json.dumps(
            {
                "id": "ranges",
                "containers": [
                    {
                        "name": "web",
                        "image": "busybox",
                        "command": [
                            "sh",
                            "-c",
                            " && ".join(
                                [
                                    SERVE.format(port=1300, text="thirteen-hundred"),
                                    SERVE.format(port=1301, text="thirteen-oh-one") + " -f",
                                ]
                            ),
                        ],
                    }
                ],
                "resource": {"vcpu": 1, "memory": 128},
                "portmappings": [
                    {
                        "containerport": "1300-1301",
                        "hostport": f"{first}-{first + 1}",
                        "protocol": "tcp",
                    },
                    {"containerPort": "1300", "hostPort": str(elsewhere), "hostIP": "127.0.0.2"},
                ],
            }
        )
    )
    user_daemon.hyperctl("run", "-d", "-p", str(pod_file))
    assert eventually(lambda: fetch(f"http://127.0.0.1:{first}/"), "port 1300") == (
        "thirteen-hundred"
    )
    assert fetch(f"http://127.0.0.1:{first + 1}/") == "thirteen-oh-one"
    assert fetch(f"http://127.0.0.2:{elsewhere}/") == "thirteen-hundred"
    assert fetch(f"http://127.0.0.1:{elsewhere}/") is None
    listing = user_daemon.hyperctl("ports", "ls", "ranges")
    assert f"127.0.0.1:{first}" in listing and f"127.0.0.1:{first + 1}" in listing
    assert "10.0.2.15" in user_daemon.hyperctl("list")

    # A mapping added to the running pod answers; deleted, it is gone.
    extra = free_port()
    user_daemon.hyperctl("ports", "add", "ranges", f"{extra}:1300")
    assert fetch(f"http://127.0.0.1:{extra}/") == "thirteen-hundred"
    user_daemon.hyperctl("ports", "delete", "ranges", f"{extra}:1300")
    assert fetch(f"http://127.0.0.1:{extra}/") is None

    # A second pod wanting a port the first one holds is refused before it starts.
    error = user_daemon.refused(
        "run", "-d", "--name", "clash", "--publish", f"{first}:80", "busybox", "true"
    )
    assert error.endswith(f"host port 127.0.0.1:{first}/tcp is already in use"), error


def test_user_container_reaches_the_host(user_daemon):
    requests = []
    seen = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.client_address[0])
            body = b"hello from the host\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            seen.set()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        user_daemon.hyperctl(
            "run", "-d", "--name", "client", "busybox", "wget", "-qO-", f"http://10.0.2.2:{port}/"
        )
        assert seen.wait(timeout=300), "the container never reached the host"
        assert requests == ["127.0.0.1"]  # QEMU's user-mode NAT connects from loopback
        eventually(
            lambda: "hello from the host" in user_daemon.logs_of("client"), "the container's output"
        )
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.root
def test_bridge_pods_reach_each_other_and_published_ports(tmp_path, netns):
    ns = netns()
    daemon = Daemon(tmp_path, "bridge", ns.name)
    try:
        daemon.hyperctl(
            "run",
            "-d",
            "--name",
            "server",
            "--publish",
            "8080:80",
            "busybox",
            "sh",
            "-c",
            SERVE.format(port=80, text="served-over-the-bridge") + " -f",
        )
        pods = daemon.hyperctl("list")
        assert "192.168.123.2" in pods

        # The published port answers from the (namespaced) host, on loopback and the bridge.
        client = "import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1]).read())"

        def from_host(url):
            return ns.sh("python3", "-c", client, url, check=False)

        assert "served-over-the-bridge" in eventually(
            lambda: from_host("http://127.0.0.1:8080/"), "the published port"
        )
        assert "served-over-the-bridge" in from_host("http://192.168.123.1:8080/")

        # A second pod reaches the first one directly over the bridge.
        # It stays up after its request: a pod whose containers all exited stops.
        daemon.hyperctl(
            "run",
            "-d",
            "--name",
            "client",
            "busybox",
            "sh",
            "-c",
            "wget -qO- http://192.168.123.2/; exec sleep 1000",
        )
        assert "192.168.123.3" in daemon.hyperctl("list")
        eventually(
            lambda: "served-over-the-bridge" in daemon.logs_of("client"), "the second pod's request"
        )
        assert "tcp dport 8080 dnat to 192.168.123.2:80" in ns.nft_table()
        # Both VMs are clones of one template (its NIC had the template's MAC), each
        # with its own MAC, the one hyperd gave it, now.
        inspected = json.loads(daemon.hyperctl("inspect", "server", "client"))
        assert len({pod["vm_template"] for pod in inspected}) == 1
        assert inspected[0]["vm_template"]
        macs = {
            daemon.hyperctl("exec", name, "cat", "/sys/class/net/eth0/address").strip()
            for name in ("server", "client")
        }
        assert macs == {pod["mac"] for pod in inspected} and len(macs) == 2
    finally:
        daemon.stop()
    # The last pod took the bridge, its taps and the nftables table with it.
    assert ns.nft_table() is None
    assert set(ns.links()) == {"lo"}

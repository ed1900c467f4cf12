"""Packets through the bridge's NAT and port mappings, without a VM yet.

A veth whose far end sits in a second namespace stands in for the pod's NIC:
it is plugged into the bridge the driver made and given the address the
driver leased, so the kernel applies exactly the driver's bridge, routes and
nftables rules to it. A third namespace plays the outside world. (With real
VMs, the tap replaces the veth; see docs/network.md.)

    outside (10.99.0.2) --veth-- host ns: hyper0 192.168.123.1, nft --veth-- "pod" .2, .3
"""

from __future__ import annotations

import pytest
from hypercontainer.drivers import PortForward
from hypercontainer_plugins.network.bridge import BridgeNetwork

pytestmark = pytest.mark.root

# Answers every connection with the address it came from, then hangs up.
PEER_SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen()
print("ready", flush=True)
while True:
    conn, (peer, _) = s.accept()
    conn.sendall(peer.encode() + b"\\n")
    conn.close()
"""

CLIENT = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20) as s:
    print(s.makefile().readline().strip())
"""


def attach(config, pod_id, forwards):
    return BridgeNetwork(config).attach(pod_id, forwards)


def plug(host, pod, address):
    """A stand-in NIC: veth into `pod`, its host end on the bridge, the leased address."""
    host.sh(
        "ip",
        "link",
        "add",
        "v" + pod.name[-8:],
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        pod.name,
    )
    host.sh("ip", "link", "set", "v" + pod.name[-8:], "master", "hyper0", "up")
    pod.sh("ip", "addr", "add", address, "dev", "eth0")
    pod.sh("ip", "link", "set", "eth0", "up")
    pod.sh("ip", "route", "add", "default", "via", "192.168.123.1")


def serve(ns, port):
    server = ns.popen("python3", "-c", PEER_SERVER, str(port))
    assert server.stdout.readline().strip() == "ready", server.stderr.read()
    return server


def ask(ns, host, port) -> str:
    """The peer address the server at host:port saw for a connection from `ns`."""
    return ns.sh("python3", "-c", CLIENT, host, str(port)).strip()


def test_nat_port_mappings_and_pod_to_pod(config, netns):
    host, outside = netns(), netns("-o")
    pod_a, pod_b = netns("-a"), netns("-b")
    a = host.run(attach, config, "a", [PortForward("tcp", "", 8080, 80)])
    b = host.run(attach, config, "b", [])
    plug(host, pod_a, a.address)
    plug(host, pod_b, b.address)
    host.sh(
        "ip", "link", "add", "vout", "type", "veth", "peer", "name", "eth0", "netns", outside.name
    )
    host.sh("ip", "addr", "add", "10.99.0.1/24", "dev", "vout")
    host.sh("ip", "link", "set", "vout", "up")
    outside.sh("ip", "addr", "add", "10.99.0.2/24", "dev", "eth0")
    outside.sh("ip", "link", "set", "eth0", "up")

    servers = [serve(pod_a, 80), serve(outside, 7000)]
    try:
        # Two pods on the bridge reach each other directly.
        assert ask(pod_b, "192.168.123.2", 80) == "192.168.123.3"
        # A pod reaches the outside, masqueraded behind the host (outside has no route back).
        assert ask(pod_a, "10.99.0.2", 7000) == "10.99.0.1"
        # The published port answers from outside, from the host itself and from loopback.
        assert ask(outside, "10.99.0.1", 8080) == "10.99.0.2"
        assert ask(host, "10.99.0.1", 8080) == "10.99.0.1"
        assert ask(host, "127.0.0.1", 8080) == "192.168.123.1"
        # A pod using the host's published port (hairpin) reaches the pod behind it.
        assert ask(pod_b, "10.99.0.1", 8080) == "192.168.123.1"
    finally:
        for server in servers:
            server.kill()
            server.wait()

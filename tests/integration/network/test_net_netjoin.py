"""Joining a network namespace someone else configured (core/netjoin.py), without a VM.

The test holds the tap's file descriptor where QEMU would: frames the peer
sends to the pod's address come out of it, and a frame written into it
leaves through the namespace's eth0 (the peer's ARP reply to it comes back).
"""

from __future__ import annotations

import ipaddress
import os
import select
import socket
import struct
import time

import pytest
from hc_podns import MTU, configured
from hypercontainer import netjoin
from hypercontainer import netns as namespaces
from hypercontainer.drivers import Cap
from hypercontainer.errors import UserError
from hypercontainer.names import tap_name

pytestmark = pytest.mark.root

VNET_HDR = 10  # struct virtio_net_hdr before every frame of an IFF_VNET_HDR tap
ARP = 0x0806


def test_join_describes_the_interface_and_mirrors_it_to_a_tap(netns):
    ns = configured(netns)
    before = ns.state()
    attachment = netjoin.join("web", str(ns.pod.path))
    assert attachment.kind == "tap" and attachment.tap == tap_name("web")
    assert (attachment.netns, attachment.interface) == (str(ns.pod.path), "eth0")
    assert attachment.mac == ns.mac()
    assert attachment.address == f"{ns.address}/24"
    assert attachment.addresses == [f"{ns.address}/24", f"{ns.address6}/64"]
    assert attachment.gateway == ns.gateway
    assert attachment.routes == [
        {"dst": "0.0.0.0/0", "gateway": ns.gateway},
        {"dst": "10.250.0.0/16", "gateway": ns.gateway},
    ]
    assert attachment.mtu == MTU
    assert attachment.requires == {Cap.TAP_NETWORK, Cap.NETNS_TAP}

    tap = ns.pod.links()[attachment.tap]
    assert tap["linkinfo"]["info_data"]["persist"] and tap["mtu"] == MTU
    for source, target in (("eth0", attachment.tap), (attachment.tap, "eth0")):
        assert f"Egress Redirect to device {target})" in ns.pod.sh(
            "tc", "filter", "show", "dev", source, "ingress"
        )
    # The interface itself keeps its addresses and routes: the namespace is its maker's.
    during = ns.state()
    assert (during["addresses"], during["routes"]) == (before["addresses"], before["routes"])

    netjoin.leave("web", str(ns.pod.path))
    assert ns.state() == before


def test_frames_cross_the_mirror_both_ways(netns):
    ns = configured(netns)
    attachment = netjoin.join("web", str(ns.pod.path))
    fd = namespaces.open_tap(str(ns.pod.path), attachment.tap)
    try:
        # Peer -> pod address: its ARP request comes out of the tap, not the namespace.
        ns.peer.sh(
            "python3",
            "-c",
            "import socket; socket.socket(socket.AF_INET, "
            f"socket.SOCK_DGRAM).sendto(b'x', ('{ns.address}', 9))",
        )
        request = read_arp(fd, opcode=1)
        assert target_ip(request) == ns.address
        assert ns.pod.sh("ip", "neigh", "show", "dev", "eth0") == ""  # the stack saw nothing

        # Tap -> peer: an ARP request written by "the guest" leaves through eth0; the
        # peer's answer, to the guest's MAC, comes back out of the tap.
        os.write(fd, bytes(VNET_HDR) + arp_request(attachment.mac, ns.address, ns.gateway))
        reply = read_arp(fd, opcode=2)
        assert sender_ip(reply) == ns.gateway
        assert reply[0:6] == bytes.fromhex(attachment.mac.replace(":", ""))
    finally:
        os.close(fd)
    netjoin.leave("web", str(ns.pod.path))


def test_a_join_cut_short_is_redone_and_a_second_pod_is_refused(netns):
    ns = configured(netns)
    before = ns.state()
    netjoin.join("web", str(ns.pod.path))  # as if hyperd died before recording it
    again = netjoin.join("web", str(ns.pod.path))
    assert [name for name in ns.pod.links() if name.startswith("hc")] == [again.tap]

    with pytest.raises(UserError, match="eth0 already has an ingress qdisc"):
        netjoin.join("other", str(ns.pod.path))
    assert tap_name("other") not in ns.pod.links()
    netjoin.leave("other", str(ns.pod.path))  # owns nothing here: leaves web's mirror alone
    assert f"Egress Redirect to device {again.tap})" in ns.pod.sh(
        "tc", "filter", "show", "dev", "eth0", "ingress"
    )
    netjoin.leave("web", str(ns.pod.path))
    assert ns.state() == before


def test_refusals_change_nothing(netns, tmp_path):
    plain = tmp_path / "not-a-namespace"
    plain.write_text("")
    fifo = tmp_path / "fifo"  # opening it would block: it must not even be opened
    os.mkfifo(fifo)
    cases = {
        "relative/path": "expected the absolute path of a network namespace",
        str(tmp_path / "missing"): "No such file or directory",
        str(plain): "not a network namespace",
        str(fifo): "not a network namespace",
        str(tmp_path): "not a network namespace",
        "/proc/self/ns/mnt": "not a network namespace",
        "/proc/self/ns/net": "that is hyperd's own network namespace",
    }
    for path, message in cases.items():
        with pytest.raises(UserError, match=message):
            netjoin.join("web", path)

    empty = netns("-cniempty")
    with pytest.raises(UserError, match="no network interface to join"):
        netjoin.join("web", str(empty.path))
    down = configured(netns)
    down.pod.sh("ip", "link", "set", "eth0", "down")
    before = down.state()
    with pytest.raises(UserError, match="interface eth0 is down"):
        netjoin.join("web", str(down.pod.path))
    assert down.state() == before


def test_leave_after_the_namespace_is_gone_is_quiet(netns):
    ns = configured(netns)
    netjoin.join("web", str(ns.pod.path))
    ns.pod.delete()
    netjoin.leave("web", str(ns.pod.path))
    assert not namespaces.exists(str(ns.pod.path))


# -- frames ---------------------------------------------------------------------


def arp_request(mac: str, sender: str, target: str) -> bytes:
    own = bytes.fromhex(mac.replace(":", ""))
    ethernet = b"\xff" * 6 + own + struct.pack("!H", ARP)
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + own + socket.inet_aton(sender)
    return ethernet + body + bytes(6) + socket.inet_aton(target)


def read_arp(fd: int, opcode: int, timeout: float = 20.0) -> bytes:
    """The next ARP frame with this opcode read from the tap (other frames skipped)."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([fd], [], [], left)[0]:
            break
        frame = os.read(fd, 65536)[VNET_HDR:]
        if (
            struct.unpack("!H", frame[12:14])[0] == ARP
            and struct.unpack("!H", frame[20:22])[0] == opcode
        ):
            return frame
    raise AssertionError(f"no ARP frame (opcode {opcode}) came out of the tap")


def sender_ip(frame: bytes) -> str:
    return str(ipaddress.IPv4Address(frame[28:32]))


def target_ip(frame: bytes) -> str:
    return str(ipaddress.IPv4Address(frame[38:42]))

"""configure_interface: which NIC, and the ip commands that give it MAC, MTU, addresses, routes.

The guest's `ip` is replaced by a recorder and /sys/class/net by a directory
of fake devices: what is checked is the agent's own logic and validation.
"""

from __future__ import annotations

import pytest
from hypercontainer.guest.agent import pod
from hypercontainer.guest.agent.errors import Failure

MAC = "0a:58:0a:58:00:05"


class Recorder(list):
    """The ip commands run, and a way to add fake NICs."""

    def __init__(self, sys_net) -> None:
        super().__init__()
        self.sys_net = sys_net

    def nic(self, name: str, mac: str) -> None:
        (self.sys_net / name).mkdir()
        (self.sys_net / name / "address").write_text(mac + "\n")


@pytest.fixture
def ip(monkeypatch, tmp_path):
    calls = Recorder(tmp_path)
    monkeypatch.setattr(pod, "_ip", lambda *args: calls.append(args))
    monkeypatch.setattr(pod, "SYS_NET", str(tmp_path))
    calls.nic("lo", "00:00:00:00:00:00")
    return calls


def test_the_nic_with_the_mac_gets_mtu_addresses_and_routes_in_order(ip):
    ip.nic("eth0", MAC)
    address = pod.configure_interface(
        MAC.upper(),
        "10.88.0.5/16",
        "10.88.0.1",
        mtu=1450,
        addresses=["10.88.0.5/16", "fd00::5/64"],
        routes=[{"dst": "10.96.0.1/32"}, {"dst": "0.0.0.0/0", "gateway": "10.88.0.1"}],
    )
    assert address == "10.88.0.5"
    assert ip == [
        ("link", "set", "dev", "eth0", "mtu", "1450"),
        ("link", "set", "dev", "eth0", "up"),
        ("addr", "replace", "10.88.0.5/16", "dev", "eth0"),
        ("addr", "replace", "fd00::5/64", "dev", "eth0"),
        ("route", "replace", "10.96.0.1/32", "dev", "eth0"),
        ("route", "replace", "0.0.0.0/0", "via", "10.88.0.1", "dev", "eth0"),
    ]


def test_a_gateway_alone_gives_the_default_route(ip):
    ip.nic("eth0", MAC)
    pod.configure_interface(MAC, "10.0.2.15/24", "10.0.2.2")
    assert ip[-1] == ("route", "replace", "default", "via", "10.0.2.2", "dev", "eth0")


def test_the_only_nic_takes_the_mac_when_none_has_it(ip):
    ip.nic("eth0", "52:54:00:12:34:56")  # e.g. a VM cloned from a template
    pod.configure_interface(MAC, "10.0.0.5/24", None)
    assert ip[:3] == [
        ("link", "set", "dev", "eth0", "down"),
        ("link", "set", "dev", "eth0", "address", MAC),
        ("link", "set", "dev", "eth0", "up"),
    ]


def test_no_nic_to_choose(ip):
    ip.nic("eth0", "52:54:00:12:34:56")
    ip.nic("eth1", "52:54:00:12:34:57")
    with pytest.raises(Failure, match="no network interface with the pod's MAC, and 2 others"):
        pod.configure_interface(MAC, "10.0.0.5/24", None)
    assert ip == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"address": "10.0.0.5"}, "needs a prefix length"),
        ({"address": "10.0.0.500/24"}, "invalid interface address"),
        ({"addresses": ["fd00::5"]}, "needs a prefix length"),
        ({"mtu": 67}, "invalid MTU 67"),
        ({"mtu": 70000}, "invalid MTU 70000"),
        ({"gateway": "10.0.0"}, "invalid gateway"),
        ({"routes": [{"dst": "10.0.0.0/8", "dev": "eth9"}]}, "expected dst and gateway"),
        ({"routes": [{"dst": "10.0.0.1/8"}]}, "has host bits set"),
        ({"routes": [{"gateway": "10.0.0.1"}]}, "invalid route"),
        ({"routes": [{"dst": "::/0", "gateway": "10.0.0.1"}]}, "gateway of another IP version"),
        ({"routes": ["default"]}, "expected dst and gateway"),
    ],
)
def test_bad_input_is_refused_before_any_change(ip, kwargs, message):
    ip.nic("eth0", MAC)
    arguments = {"mac": MAC, "address": "10.0.0.5/24", "gateway": None, **kwargs}
    with pytest.raises(Failure, match=message):
        pod.configure_interface(**arguments)
    assert ip == []

import os

import pytest
from hypercontainer import drivers
from hypercontainer.drivers import Cap, Hypervisor
from hypercontainer.errors import UserError


class FakeHypervisor(Hypervisor):
    """Only its capabilities matter to check_combination."""

    name = "fake"

    def check(self): ...
    def start(self, spec): ...
    def connect_agent(self, handle, timeout): ...
    def is_running(self, handle): ...
    def stop(self, handle, timeout): ...
    def cleanup(self, handle): ...


def hypervisor(config, *caps):
    h = FakeHypervisor(config)
    h.capabilities = frozenset(caps)
    return h


def test_both_drivers_load_by_entry_point(config):
    assert {"user", "bridge", "cni"} <= set(drivers.installed("network"))
    assert drivers.load("network", "user", config).name == "user"
    assert drivers.load("network", "bridge", config).name == "bridge"


def test_user_network_needs_user_networking(config):
    user = drivers.load("network", "user", config)
    drivers.check_combination(hypervisor(config, Cap.USER_NETWORK), user)
    with pytest.raises(UserError, match="lacks user-network"):
        drivers.check_combination(hypervisor(config, Cap.TAP_NETWORK), user)
    attachment = user.attach("p", [])
    attachment.requires |= {Cap.HOST_FORWARDS}
    with pytest.raises(UserError, match="lacks host-forwards"):
        drivers.check_combination(hypervisor(config, Cap.USER_NETWORK), user, attachment.requires)


@pytest.mark.skipif(os.geteuid() != 0, reason="the root check passes only as root")
def test_bridge_network_needs_taps(config):
    bridge = drivers.load("network", "bridge", config)
    drivers.check_combination(hypervisor(config, Cap.TAP_NETWORK), bridge)
    with pytest.raises(UserError, match="lacks tap-network"):
        drivers.check_combination(hypervisor(config, Cap.USER_NETWORK), bridge)


@pytest.mark.parametrize(
    ("section", "value", "message"),
    [
        ("name", "a-very-long-bridge-name", "bridge name"),
        ("name", "br 0", "bridge name"),
        ("subnet", "10.0.0.0/31", "too small"),
        ("subnet", "banana", "bridge subnet"),
        ("host_ip", "::1", "IPv4"),
    ],
)
def test_bridge_config_is_checked(config, section, value, message):
    config = config.with_table("bridge", **{section: value})
    with pytest.raises(UserError, match=message):
        drivers.load("network", "bridge", config)


@pytest.mark.skipif(os.geteuid() != 0, reason="the root check passes only as root")
def test_cni_network_needs_a_tap_in_another_namespace(config):
    cni = drivers.load("network", "cni", config)
    drivers.check_combination(hypervisor(config, Cap.TAP_NETWORK, Cap.NETNS_TAP), cni)
    with pytest.raises(UserError, match="cannot serve network cni: it lacks netns-tap"):
        drivers.check_combination(hypervisor(config, Cap.TAP_NETWORK), cni)
    assert drivers.load("hypervisor", "cloud-hypervisor", config).capabilities.isdisjoint(
        {Cap.NETNS_TAP}
    )


@pytest.mark.parametrize(
    ("section", "value", "message"),
    [
        ("bin_dir", "relative/bin", "cni.bin_dir 'relative/bin': absolute directories"),
        ("host_ip", "banana", "host address 'banana'"),
    ],
)
def test_cni_config_is_checked(config, section, value, message):
    config = config.with_table("cni", **{section: value})
    with pytest.raises(UserError, match=message):
        drivers.load("network", "cni", config)

import re

from hypercontainer_plugins.network.mac import mac_for


def test_mac_is_stable_and_distinct():
    assert mac_for("pod-a") == mac_for("pod-a")
    macs = {mac_for(f"pod-{i}") for i in range(1000)}
    assert len(macs) == 1000


def test_mac_is_locally_administered_unicast():
    for i in range(256):
        mac = mac_for(f"nginx-{i}")
        assert re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", mac)
        first = int(mac[:2], 16)
        assert first & 0b10, mac  # locally administered
        assert not first & 0b01, mac  # unicast

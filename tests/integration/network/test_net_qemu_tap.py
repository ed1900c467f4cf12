"""QEMU accepts the bridge driver's tap exactly as the QEMU driver will pass it.

No guest is booted: QEMU starts paused (-S) and its monitor reports the
network backend it opened, which fails loudly if the tap does not fit.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hypercontainer_plugins.network.bridge import BridgeNetwork

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not shutil.which("qemu-system-x86_64"), reason="needs QEMU"),
]


def open_tap_in_qemu(config):
    network = BridgeNetwork(config)
    attachment = network.attach("vm", [])
    try:
        done = subprocess.run(
            ["qemu-system-x86_64", "-S", "-nodefaults", "-display", "none", "-monitor", "stdio",
             "-netdev", f"tap,id=net0,ifname={attachment.tap},script=no,downscript=no",
             "-device", f"virtio-net-pci,netdev=net0,mac={attachment.mac}"],
            input="info network\nquit\n", capture_output=True, text=True, timeout=120,
        )
    finally:
        network.detach("vm", attachment)
    return attachment, done.returncode, done.stdout + done.stderr


def test_qemu_opens_the_tap(config, netns):
    attachment, code, output = netns().run(open_tap_in_qemu, config)
    assert code == 0, output
    assert f"type=tap,ifname={attachment.tap},script=no,downscript=no" in output
    assert f"macaddr={attachment.mac}" in output

"""QEMU accepts the network drivers' taps exactly as the QEMU driver passes them.

No guest is booted: QEMU starts paused (-S) and its monitor reports the
network backend it opened, which fails loudly if the tap does not fit.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from hc_podns import configured
from hypercontainer import netjoin
from hypercontainer import netns as namespaces
from hypercontainer_plugins.network.bridge import BridgeNetwork

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not shutil.which("qemu-system-x86_64"), reason="needs QEMU"),
]


def info_network(netdev: str, mac: str, pass_fds: tuple[int, ...] = ()) -> tuple[int, str]:
    """QEMU's exit code and its monitor's `info network`, for one tap backend."""
    done = subprocess.run(
        [
            "qemu-system-x86_64",
            "-S",
            "-nodefaults",
            "-display",
            "none",
            "-monitor",
            "stdio",
            "-netdev",
            netdev,
            "-device",
            f"virtio-net-pci,netdev=net0,mac={mac}",
        ],
        input="info network\nquit\n",
        capture_output=True,
        text=True,
        timeout=120,
        pass_fds=pass_fds,
    )
    return done.returncode, done.stdout + done.stderr


def open_tap_in_qemu(config):
    network = BridgeNetwork(config)
    attachment = network.attach("vm", [])
    try:
        code, output = info_network(
            f"tap,id=net0,ifname={attachment.tap},script=no,downscript=no", attachment.mac
        )
    finally:
        network.detach("vm", attachment)
    return attachment, code, output


def test_qemu_opens_the_tap(config, netns):
    attachment, code, output = netns().run(open_tap_in_qemu, config)
    assert code == 0, output
    assert f"type=tap,ifname={attachment.tap},script=no,downscript=no" in output
    assert f"macaddr={attachment.mac}" in output


def test_qemu_takes_a_joined_namespace_tap_by_file_descriptor(netns):
    ns = configured(netns)
    attachment = netjoin.join("web", str(ns.pod.path))
    fd = namespaces.open_tap(str(ns.pod.path), attachment.tap)
    try:
        code, output = info_network(f"tap,id=net0,fd={fd}", attachment.mac, pass_fds=(fd,))
    finally:
        os.close(fd)
        netjoin.leave("web", str(ns.pod.path))
    assert code == 0, output
    assert f"macaddr={attachment.mac}" in output and "type=tap,fd=" in output

"""The qemu driver, and tests/plugin_dist's qemu-small built on it, pass the conformance
kit: real VMs booting the real guest image."""

from __future__ import annotations

import re
import shutil

import pytest
from hypercontainer import drivers

from tests.support.kit import run_kit

pytestmark = pytest.mark.vm


def test_qemu_keeps_the_hypervisor_contract(tmp_path, guest_image):
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is not installed")
    selections = ["hypervisor=qemu"]
    if "qemu-small" in drivers.installed("hypervisor"):  # tests/plugin_dist, as CI installs it
        selections.append("hypervisor=qemu-small")
    done = run_kit(tmp_path, *selections)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    last = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(rf"{10 * len(selections)} passed in .*", last), last

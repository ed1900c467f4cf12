"""The qemu driver passes the conformance kit: real VMs booting the real guest image."""

from __future__ import annotations

import re
import shutil

import pytest

from tests.support.kit import run_kit

pytestmark = pytest.mark.vm


def test_qemu_keeps_the_hypervisor_contract(tmp_path, guest_image):
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is not installed")
    done = run_kit(tmp_path, "hypervisor=qemu")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    last = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"10 passed in .*", last), last

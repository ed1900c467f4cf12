"""Booting the guest image directly with the QEMU driver, for the guest's own tests."""

from __future__ import annotations

import time
from pathlib import Path

from hypercontainer.drivers import VMSpec
from hypercontainer.guest.image import GuestImage

EXEC_LINE = "hc-init: exec agent"


def make_spec(image: GuestImage, run_dir: Path) -> VMSpec:
    return VMSpec(
        pod_id=run_dir.name,
        vm_name=f"vm-{run_dir.name}",
        vcpus=1,
        memory_mb=128,
        kernel=image.kernel,
        initrd=image.initrd,
        kernel_args=image.kernel_args,
        run_dir=run_dir,
        console_log=run_dir.parent / f"{run_dir.name}-console.log",
    )


def wait_for_console(log: Path, text: str, timeout: float) -> str:
    """The console log once it contains `text` (the guest offers no other signal)."""
    deadline = time.monotonic() + timeout
    while True:
        content = log.read_text(errors="replace") if log.exists() else ""
        if text in content or "hc-init: FAILED" in content:
            return content
        if time.monotonic() > deadline:
            return content
        time.sleep(0.2)

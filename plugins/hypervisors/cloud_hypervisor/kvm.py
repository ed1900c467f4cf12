"""Is KVM usable? Cloud Hypervisor has no emulation to fall back to."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from hypercontainer.errors import UserError

KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01
KVM_API_VERSION = 12  # stable since Linux 2.6.22


def check_kvm(device: Path = Path("/dev/kvm")) -> None:
    """Raise UserError unless `device` opens and creates a VM.

    A working ioctl does not prove every guest boots (a nested, paravirtual
    KVM may still fail); the VMM's own error tells that at boot.
    """
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        raise UserError(f"cloud-hypervisor needs KVM: cannot open {device}: {e.strerror}") from None
    try:
        version = fcntl.ioctl(fd, KVM_GET_API_VERSION)
        if version != KVM_API_VERSION:
            raise UserError(f"cloud-hypervisor needs KVM: {device} speaks API {version}")
        os.close(fcntl.ioctl(fd, KVM_CREATE_VM, 0))
    except OSError as e:
        raise UserError(f"cloud-hypervisor needs KVM: {device} is unusable: {e.strerror}") from None
    finally:
        os.close(fd)

"""Fixtures: the real guest image (built or found in the cache) and real QEMU VMs."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypercontainer.config import Config, load
from hypercontainer.drivers import VMSpec
from hypercontainer.guest.image import GuestImage, ensure_image
from hypercontainer_plugins.hypervisors.qemu import QemuHypervisor

from tests.support.guestvm import EXEC_LINE, make_spec, wait_for_console  # noqa: F401


@pytest.fixture(scope="session")
def run_root() -> Iterator[Path]:
    # Short: unix socket paths are limited to 107 bytes.
    path = Path(tempfile.mkdtemp(prefix="hcq-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def config(run_root: Path) -> Config:
    """The machine's configuration (so the image cache is the one scripts/install filled)."""
    return load().model_copy(update={"run_root": run_root})


@pytest.fixture(scope="session")
def guest_image(config: Config) -> GuestImage:
    return ensure_image(config)


@pytest.fixture(scope="session")
def qemu(config: Config) -> QemuHypervisor:
    if shutil.which(QemuHypervisor(config).binary) is None:
        pytest.skip("qemu-system-x86_64 is not installed")
    return QemuHypervisor(config)


@pytest.fixture
def vm_spec(guest_image: GuestImage, run_root: Path) -> Iterator[VMSpec]:
    """A spec for a small VM with its own run directory."""
    run_dir = Path(tempfile.mkdtemp(prefix="vm-", dir=run_root))
    yield make_spec(guest_image, run_dir)

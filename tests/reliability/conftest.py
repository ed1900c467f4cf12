"""Fixtures shared by the reliability tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.reliability.support import BULKY, finish, registry_with
from tests.support.daemon import Hyperd
from tests.support.imagebuild import write_archive


@pytest.fixture
def daemons() -> Iterator[Callable[..., Hyperd]]:
    """Make started hyperds (Hyperd arguments); each is cleaned up after the test."""
    made: list[Hyperd] = []

    def make(config: str = "", busybox: bool = True, **kwargs) -> Hyperd:
        daemon = Hyperd(config=config, **kwargs)
        made.append(daemon)
        daemon.start()
        if busybox:
            daemon.load_busybox()
        return daemon

    yield make
    for daemon in made:
        finish(daemon)


@pytest.fixture(scope="module")
def busybox_daemon() -> Iterator[Hyperd]:
    """One hyperd with the busybox image for a whole module, cleaned up after it."""
    hyperd = Hyperd().start()
    try:
        hyperd.load_busybox()
        yield hyperd
    finally:
        finish(hyperd)


@pytest.fixture(scope="module")
def bulky_archive(tmp_path_factory, bulky_image) -> Path:
    """The module's `bulky_image` as an OCI archive, named BULKY."""
    return write_archive(tmp_path_factory.mktemp("archive") / "bulky.tar", {BULKY: bulky_image})


@pytest.fixture(scope="module")
def bulky_registry(tmp_path_factory, bulky_image):
    """A registry on loopback holding the module's `bulky_image` as `bulky:1`."""
    with registry_with(tmp_path_factory.mktemp("registry"), {"bulky": bulky_image}) as registry:
        yield registry

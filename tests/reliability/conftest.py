"""Fixtures shared by the reliability tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.reliability.support import finish
from tests.support.daemon import Hyperd


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

import pytest

from tests.support.daemon import Hyperd


@pytest.fixture(scope="module")
def hyperd():
    """A running hyperd with the offline busybox image loaded; cleaned up after the module."""
    daemon = Hyperd().start()
    try:
        daemon.load_busybox()
        yield daemon
    finally:
        daemon.cleanup()

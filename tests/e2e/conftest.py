import pytest

from tests.support.daemon import busybox_hyperd


@pytest.fixture(scope="module")
def hyperd():
    """A running hyperd with the offline busybox image loaded; cleaned up after the module."""
    with busybox_hyperd() as daemon:
        yield daemon

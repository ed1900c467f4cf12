"""The real lifecycle engine on fake VMs (hypercontainer.testing): milliseconds a test."""

from __future__ import annotations

import pytest
from hypercontainer.testing import Engine


@pytest.fixture
def engine(tmp_path):
    engine = Engine(tmp_path)
    yield engine
    engine.close()

"""Fixtures: a real guest agent on the host (see agent_harness.py)."""

from __future__ import annotations

import pytest
from agent_harness import Harness, requirements


@pytest.fixture
def agent(tmp_path):
    reason = requirements()
    if reason:
        pytest.skip(reason)
    harness = Harness(tmp_path)
    try:
        harness.connect()
        yield harness
    finally:
        harness.stop()

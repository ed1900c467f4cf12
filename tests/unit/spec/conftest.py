"""Fixtures for the pod spec tests: a minimal valid pod, and the refusal message of one."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypercontainer.errors import UserError
from hypercontainer.specload import parse_pod_spec

from tests.support.podfiles import EXAMPLES

MINIMAL: dict[str, Any] = {
    "id": "web",
    "containers": [{"name": "app", "image": "busybox"}],
}


@pytest.fixture
def examples() -> Path:
    return EXAMPLES


@pytest.fixture
def pod() -> Callable[..., dict[str, Any]]:
    """A fresh minimal valid pod dict, top-level keys overridden by keyword."""

    def make(**top: Any) -> dict[str, Any]:
        data = copy.deepcopy(MINIMAL)
        data.update(top)
        return data

    return make


@pytest.fixture
def refusal() -> Callable[[Any], str]:
    """The one-line message parse_pod_spec refuses `data` with (fails if accepted)."""

    def message(data: Any, **kwargs: Any) -> str:
        with pytest.raises(UserError) as caught:
            parse_pod_spec(data, **kwargs)
        text = str(caught.value)
        assert "\n" not in text
        return text

    return message

"""The engine's parts know nothing of the runtime that composes them."""

from __future__ import annotations

import ast
import inspect

import pytest
from hypercontainer import containers, pod_session, runtime


@pytest.mark.parametrize("module", [containers, pod_session])
def test_a_part_never_imports_the_runtime(module):
    tree = ast.parse(inspect.getsource(module))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert not {name for name in imported if name and name.split(".")[-1] == "runtime"}


def test_the_runtime_is_given_its_parts():
    parameters = inspect.signature(runtime.Runtime).parameters
    assert {"hypervisor", "images", "network", "hooks"} <= {
        name for name, p in parameters.items() if p.default is inspect.Parameter.empty
    }

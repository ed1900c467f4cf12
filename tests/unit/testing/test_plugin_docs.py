"""docs/plugins.md shows the example plugins as tests/plugin_dist has them (the files the
tests install and run), and lists every rule of the conformance kit."""

from __future__ import annotations

import re
from pathlib import Path

from hypercontainer.testing.rules import RULES

REPO = Path(__file__).resolve().parents[3]
DOC = (REPO / "docs" / "plugins.md").read_text()
BLOCK = re.compile(r"```(?:python|toml)\n# (tests/plugin_dist/\S+)\n(.*?)```", re.DOTALL)


def test_every_example_is_shown_as_it_is_in_tests_plugin_dist():
    shown = {path: text for path, text in BLOCK.findall(DOC)}
    examples = {
        str(p.relative_to(REPO))
        for p in (REPO / "tests" / "plugin_dist").rglob("*")
        if p.suffix in (".py", ".toml")
        and p.name != "__init__.py"
        and "build" not in p.parts
        and ".egg-info" not in str(p)
    }
    assert set(shown) == examples
    for path, text in shown.items():
        assert text == (REPO / path).read_text(), f"docs/plugins.md shows another {path}"


def test_every_rule_of_the_kit_is_listed():
    listed = dict(re.findall(r"^\| ([A-Z]\d+) \| (.*) \|$", DOC, re.MULTILINE))
    assert listed == RULES

"""The pytest plugin: `pytest -p hypercontainer.testing --hc-driver KIND=NAME`.

KIND is hypervisor, network, images or hooks; NAME an installed entry point's
name, or `module:attribute` (`module` alone for a hook plugin) for one not
installed. Each selection adds the contract of its kind (contracts/KIND.py)
to the session, run against that plugin; without test paths on the command
line only the contracts run.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from .. import config as configuration
from .. import drivers, hookspecs

GROUPS = {
    "hypervisor": drivers.HYPERVISORS,
    "network": drivers.NETWORKS,
    "images": drivers.IMAGES,
    "hooks": hookspecs.GROUP,
}
SELECTIONS = pytest.StashKey["list[Selection]"]()


@dataclass(frozen=True)
class Selection:
    """One plugin to check: its kind, how it was named, and what that name loads."""

    kind: str
    name: str

    @classmethod
    def parse(cls, text: str) -> Selection:
        kind, sep, name = text.partition("=")
        if not sep or not name or kind not in GROUPS:
            raise pytest.UsageError(
                f"--hc-driver {text!r}: expected KIND=NAME with KIND one of {', '.join(GROUPS)}"
            )
        return cls(kind, name)

    def load(self) -> Any:
        """The driver class (or hook plugin object) this selection names."""
        module, sep, attribute = self.name.partition(":")
        found = {ep.name: ep for ep in entry_points(group=GROUPS[self.kind])}
        try:
            if self.name in found:
                return found[self.name].load()
            if sep:
                return getattr(importlib.import_module(module), attribute)
            if self.kind == "hooks":
                return importlib.import_module(self.name)
        except (ImportError, AttributeError) as e:
            raise pytest.UsageError(f"--hc-driver {self.kind}={self.name}: {e}") from None
        raise pytest.UsageError(
            f"--hc-driver {self.kind}={self.name}: no such entry point in "
            f"{GROUPS[self.kind]} (installed: {', '.join(sorted(found))}) "
            "and not a module:attribute"
        )


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hypercontainer", "hypercontainer plugin conformance")
    group.addoption(
        "--hc-driver",
        action="append",
        default=[],
        metavar="KIND=NAME",
        help="check the plugin NAME of KIND (hypervisor, network, images, hooks) "
        "against its contract; may be given several times",
    )
    group.addoption(
        "--hc-config",
        metavar="FILE",
        help="a hypercontainer configuration (TOML) for the drivers' settings",
    )
    group.addoption(
        "--hc-pod-label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a label of the pods the kit runs (e.g. one a hook plugin vetoes)",
    )


def pytest_configure(config: pytest.Config) -> None:
    selections = [Selection.parse(text) for text in config.getoption("hc_driver")]
    for selection in selections:
        selection.load()  # a name that loads nothing is a usage error, before any test
    config.stash[SELECTIONS] = selections
    if selections and config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args = []  # no paths given: the contracts only, not the project's own tests


class Contract(pytest.Module):
    """A kind's contract module, collected once per plugin selected for it."""

    selection: Selection

    def _getobj(self):
        # A module object of its own: pytest reads a module's fixtures once per object.
        spec = importlib.util.find_spec(f"{__package__}.contracts.{self.selection.kind}")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    for selection in config.stash.get(SELECTIONS, []):
        path = Path(__file__).parent / "contracts" / f"{selection.kind}.py"
        contract = Contract.from_parent(
            session, path=path, nodeid=f"hc-contract[{selection.kind}={selection.name}]"
        )
        contract.selection = selection
        items.extend(session.genitems(contract))


# -- fixtures the contracts share ---------------------------------------------


@pytest.fixture(scope="module")
def hc_selection(request: pytest.FixtureRequest) -> Selection:
    contract = request.node.getparent(Contract)
    if contract is None:
        pytest.skip("not part of a hypercontainer contract")
    return contract.selection


@pytest.fixture(scope="module")
def hc_plugin(hc_selection: Selection) -> Any:
    return hc_selection.load()


@pytest.fixture(scope="module")
def hc_root() -> Iterator[Path]:
    """A short directory for state and run files (unix socket paths are limited)."""
    path = Path(tempfile.mkdtemp(prefix="hc-kit-", dir="/tmp"))
    yield path
    import shutil

    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def hc_make_config(request: pytest.FixtureRequest, hc_root: Path):
    """make(name) -> a Config from --hc-config with its own state and run roots."""
    path = request.config.getoption("hc_config")
    base = configuration.load(path, environ={}) if path else configuration.Config()
    counter = iter(range(1, 1 << 30))

    def make(**settings: Any) -> configuration.Config:
        root = hc_root / str(next(counter))
        update = {"state_root": root / "state", "run_root": root / "run", **settings}
        for directory in (update["state_root"], update["run_root"]):
            Path(directory).mkdir(parents=True, mode=0o700)
        return base.model_copy(update=update)

    return make


@pytest.fixture(scope="module")
def hc_pod_labels(request: pytest.FixtureRequest) -> dict[str, str]:
    labels = {}
    for text in request.config.getoption("hc_pod_label"):
        key, sep, value = text.partition("=")
        if not sep:
            raise pytest.UsageError(f"--hc-pod-label {text!r}: expected KEY=VALUE")
        labels[key] = value
    return labels


def is_root() -> bool:
    return os.geteuid() == 0

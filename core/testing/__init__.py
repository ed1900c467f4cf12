"""hypercontainer.testing: the conformance kit for plugin authors, and the fakes behind it.

    pytest -p hypercontainer.testing --hc-driver network=mynet

runs the contract of a network driver (and likewise `hypervisor=`, `images=`,
`hooks=`) against any installed plugin; docs/plugins.md explains each rule
(rules.py). The fakes are public: `Engine` is the real lifecycle engine on a
`FakeHypervisor` whose VMs boot in microseconds and run a `FakeGuest` agent, so
a network or hook plugin is tested without a VM.
"""

from .engine import Engine, fake_config
from .fakeguest import FakeGuest, Program
from .fakehypervisor import FakeHost, FakeHypervisor, FakeVM
from .plugin import (
    Selection,
    hc_make_config,
    hc_plugin,
    hc_pod_labels,
    hc_root,
    hc_selection,
    pytest_addoption,
    pytest_collection_modifyitems,
    pytest_configure,
)

__all__ = [
    "Engine",
    "FakeGuest",
    "FakeHost",
    "FakeHypervisor",
    "FakeVM",
    "Program",
    "Selection",
    "fake_config",
    "hc_make_config",
    "hc_plugin",
    "hc_pod_labels",
    "hc_root",
    "hc_selection",
    "pytest_addoption",
    "pytest_collection_modifyitems",
    "pytest_configure",
]

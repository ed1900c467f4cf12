"""The contract of each plugin kind, one rule per line: what the kit checks and names.

A failing check says which rule was broken, e.g.
`network rule N3 (detach is idempotent and tolerates partial state): ...`,
so an author knows what to fix without reading the kit. docs/plugins.md lists them.
"""

from __future__ import annotations

from typing import NoReturn

import pytest

RULES: dict[str, str] = {
    # every kind
    "D1": "a driver has a name and declares its capabilities and needs as sets of strings",
    "D2": "a driver's Settings subclass DriverSettings (HypervisorSettings for a "
    "hypervisor), have a default for each setting and refuse unknown keys in one line",
    # hypervisors
    "H1": "check() passes or raises UserError saying what is missing",
    "H2": "start() returns a JSON-serialisable handle of a running VM whose agent answers",
    "H3": "a failed start() raises HyperError and leaves nothing in the run directory",
    "H4": "stop() powers the VM off; stopping a stopped VM is harmless",
    "H5": "cleanup() removes what start() made, and may be called again",
    "H6": "a new driver instance (a restarted daemon) adopts a running VM from its handle",
    "H7": "reap(run_dir) finds and ends a VM whose handle was never recorded",
    "H8": "watch() calls back once the VM has ended",
    "H9": "pause and resume work when declared, and raise UserError when not",
    "H10": "host port forwards work when declared, and raise UserError when not",
    "H11": "connect_agent() of a VM that is not running raises HyperError",
    # networks
    "N1": "attach() returns a NetworkAttachment of kind none, user or tap that survives "
    "the store (to_dict/from_dict)",
    "N2": "attach() is idempotent per pod: again, it repeats or replaces the pod's interface",
    "N3": "detach() is idempotent and tolerates partial state",
    "N4": "a new driver instance (a restarted daemon) adopts and then detaches a pod",
    "N5": "recover() keeps the pods it is told about and tolerates being called again",
    "N6": "port mappings are applied and listed, or refused with a UserError",
    "N7": "an attachment requires the hypervisor capabilities its kind needs",
    "N8": "a pod runs on the network, and a failed start releases what attach() took",
    # images
    "I1": "layers_root() is an absolute directory path",
    "I2": "resolve() of an unknown image raises NotFound",
    "I3": "load() of an OCI archive returns its references, and resolve() finds the image "
    "with its layers below layers_root()",
    "I4": "resolve() finds an image by its id and by a prefix of it",
    "I5": "list() shows every image",
    "I6": "remove() refuses an image in use; one not in use is then gone",
    "I7": "save() writes an archive that another store loads as the same image",
    "I8": "the store survives a new driver instance, and recover() is harmless",
    "I9": "optional verbs work or raise UserError",
    "I10": "a registry that cannot be reached is a HyperError of one line",
    # hook plugins
    "K1": "every hook implementation names a hook of hypercontainer.hookspecs",
    "K2": "hook implementations take only arguments the hook passes",
    "K3": "a plugin registers without error (wrappers are new-style, no unknown hooks)",
    "K4": "post-hook listeners do not raise during a pod's whole life",
    "K5": "a pre-hook veto is a one-line UserError, and leaves no state behind",
    # the engine (run with every kind)
    "E1": "a vetoed operation leaves no pod, container, VM or network allocation",
}


def broken(rule: str, detail: str) -> NoReturn:
    """Fail the current check, naming the rule: `raise broken("N3", "...")` or call it."""
    pytest.fail(f"{kind_of(rule)} rule {rule} ({RULES[rule]}): {detail}", pytrace=False)


def kind_of(rule: str) -> str:
    return {
        "D": "driver",
        "H": "hypervisor",
        "N": "network",
        "I": "images",
        "K": "hook",
        "E": "engine",
    }[rule[0]]


def check(condition: object, rule: str, detail: str) -> None:
    if not condition:
        broken(rule, detail)

"""ADD, CHECK and DEL of a whole network configuration list, as libcni runs them.

Each plugin gets its own configuration plus the list's `name` and
`cniVersion`, a `runtimeConfig` holding the capabilities it declares (here:
portMappings), and `prevResult`: the previous plugin's result on ADD, the
cached result of ADD on CHECK and DEL. ADD runs the plugins in order, DEL in
reverse; DEL goes on past a failing plugin (releasing what the others hold)
and reports the first failure afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hypercontainer.errors import HyperError
from hypercontainer.log import get_logger

from . import plugin
from .conflist import NetworkList
from .plugin import Invocation


def plugin_config(
    network: NetworkList,
    index: int,
    capability_args: dict[str, Any],
    prev_result: dict[str, Any] | None,
) -> dict[str, Any]:
    config = dict(network.plugins[index])
    config["name"], config["cniVersion"] = network.name, network.cni_version
    wanted = config.get("capabilities")
    runtime = {
        name: value
        for name, value in capability_args.items()
        if isinstance(wanted, dict) and wanted.get(name) is True
    }
    if runtime:
        config["runtimeConfig"] = runtime
    if prev_result is not None:
        config["prevResult"] = prev_result
    return config


def add(
    network: NetworkList, invocation: Invocation, capability_args: dict[str, Any]
) -> dict[str, Any]:
    """Run ADD through the list; the last plugin's result is the network's."""
    result: dict[str, Any] | None = None
    for index in range(len(network.plugins)):
        result = plugin.run(
            "ADD", plugin_config(network, index, capability_args, result), invocation
        )
    assert result is not None  # a list has at least one plugin (conflist.parse)
    return result


def check(
    network: NetworkList,
    invocation: Invocation,
    capability_args: dict[str, Any],
    cached: dict[str, Any],
) -> list[HyperError]:
    """CHECK every plugin against the cached result (nothing where CHECK does not exist);
    the failures, each plugin checked even after another failed."""
    if not network.checkable:
        return []
    return _each(network, "CHECK", range(len(network.plugins)), invocation, capability_args, cached)


def delete(
    network: NetworkList,
    invocation: Invocation,
    capability_args: dict[str, Any],
    cached: dict[str, Any] | None,
) -> None:
    """DEL through the list, last plugin first; raises the first failure after trying all."""
    failures = _each(
        network, "DEL", reversed(range(len(network.plugins))), invocation, capability_args, cached
    )
    for failure in failures:
        get_logger().warning(
            "CNI DEL failed", error=str(failure), container_id=invocation.container_id
        )
    if failures:
        raise failures[0]


def _each(
    network: NetworkList,
    command: str,
    order: Iterable[int],
    invocation: Invocation,
    capability_args: dict[str, Any],
    cached: dict[str, Any] | None,
) -> list[HyperError]:
    failures = []
    for index in order:
        try:
            plugin.run(command, plugin_config(network, index, capability_args, cached), invocation)
        except HyperError as e:  # a plugin failing, or missing
            failures.append(e)
    return failures

"""The CNI protocol as the cni driver speaks it, against stand-in plugins.

Each stand-in is a small script in a temporary CNI_PATH directory that writes
down what it was given (CNI_* variables, stdin, its parent-death signal) and
answers as told. The real plugins are exercised in tests/integration/network.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hypercontainer.errors import UserError
from hypercontainer_plugins.network.cni import conflist, operations, plugin
from hypercontainer_plugins.network.cni.plugin import Invocation, PluginError

STAND_IN = """#!{python}
import ctypes, json, os, sys
config = json.load(sys.stdin)
signal = ctypes.c_int()
ctypes.CDLL(None).prctl(2, ctypes.byref(signal))  # PR_GET_PDEATHSIG
with open({log!r}, "a") as log:
    log.write(json.dumps({{"type": config["type"], "env": {{k: v for k, v in os.environ.items()
               if k.startswith("CNI_")}}, "config": config, "pdeathsig": signal.value}}) + "\\n")
answer = config.get("answer", {{}}).get(os.environ["CNI_COMMAND"])
if answer and "code" in answer:
    print(json.dumps(answer))
    sys.exit(1)
if os.environ["CNI_COMMAND"] == "ADD":
    print(json.dumps(answer or {{"cniVersion": config["cniVersion"], "ips": [],
                                 "seen": config["type"]}}))
"""


@pytest.fixture
def bin_dir(tmp_path):
    directory = tmp_path / "bin"
    directory.mkdir()
    for name in ("first", "second"):
        script = directory / name
        script.write_text(STAND_IN.format(python=sys.executable, log=str(tmp_path / "log")))
        script.chmod(0o755)
    return directory


def calls(tmp_path: Path) -> list[dict]:
    log = tmp_path / "log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def network(*plugins: dict, version: str = "1.0.0", **extra) -> conflist.NetworkList:
    return conflist.parse(
        json.dumps({"cniVersion": version, "name": "net1", "plugins": list(plugins), **extra}),
        "test",
    )


def invocation(bin_dir: Path) -> Invocation:
    return Invocation("c0ffee", "/run/netns/hc-c0ffee", "eth0", f"/nonexistent:{bin_dir}")


def test_add_chains_results_and_gives_capabilities_only_to_who_declares_them(bin_dir, tmp_path):
    ports = {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}
    result = operations.add(
        network(
            {"type": "first", "mtu": 1400},
            {"type": "second", "capabilities": {"portMappings": True}},
        ),
        invocation(bin_dir),
        ports,
    )
    assert result["seen"] == "second"
    first, second = calls(tmp_path)
    assert first["env"] == {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "c0ffee",
        "CNI_NETNS": "/run/netns/hc-c0ffee",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": f"/nonexistent:{bin_dir}",
    }
    assert first["config"] == {"type": "first", "mtu": 1400, "name": "net1", "cniVersion": "1.0.0"}
    assert second["config"]["prevResult"]["seen"] == "first"
    assert second["config"]["runtimeConfig"] == ports
    assert first["pdeathsig"] == second["pdeathsig"] == 9  # SIGKILL: dies with hyperd


def test_del_runs_in_reverse_with_the_cached_result_and_goes_on_past_a_failure(bin_dir, tmp_path):
    failing = {
        "DEL": {"cniVersion": "1.0.0", "code": 11, "msg": "cannot\nrelease", "details": "try again"}
    }
    cached = {"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.2/24"}]}
    with pytest.raises(PluginError) as failure:
        operations.delete(
            network({"type": "first"}, {"type": "second", "answer": failing}),
            invocation(bin_dir),
            {},
            cached,
        )
    assert str(failure.value) == "CNI plugin second (DEL) failed: cannot release: try again"
    assert [c["type"] for c in calls(tmp_path)] == ["second", "first"]
    assert all(
        c["config"]["prevResult"] == cached and c["env"]["CNI_COMMAND"] == "DEL"
        for c in calls(tmp_path)
    )


def test_check_exists_from_0_4_0_unless_disabled(bin_dir, tmp_path):
    cached = {"cniVersion": "0.4.0"}
    assert (
        operations.check(
            network({"type": "first"}, version="0.3.1"), invocation(bin_dir), {}, cached
        )
        == []
    )
    assert (
        operations.check(
            network({"type": "first"}, version="0.4.0", disableCheck=True),
            invocation(bin_dir),
            {},
            cached,
        )
        == []
    )
    assert calls(tmp_path) == []
    failing = {"CHECK": {"code": 7, "msg": "not as added"}}
    failures = operations.check(
        network({"type": "first", "answer": failing}, {"type": "second"}, version="0.4.0"),
        invocation(bin_dir),
        {},
        cached,
    )
    assert [str(f) for f in failures] == ["CNI plugin first (CHECK) failed: not as added"]
    assert [c["env"]["CNI_COMMAND"] for c in calls(tmp_path)] == ["CHECK", "CHECK"]


def test_a_missing_plugin_and_a_silent_add_are_errors(bin_dir, tmp_path):
    with pytest.raises(UserError, match="CNI plugin 'bridge' not found in /nonexistent:"):
        operations.add(network({"type": "bridge"}), invocation(bin_dir), {})
    (bin_dir / "mute").write_text("#!/bin/sh\ncat >/dev/null\n")
    (bin_dir / "mute").chmod(0o755)
    with pytest.raises(PluginError, match=r"CNI plugin mute \(ADD\) printed no result"):
        plugin.run("ADD", {"type": "mute"}, invocation(bin_dir))
    (bin_dir / "crash").write_text("#!/bin/sh\necho 'panic: the end' >&2\nexit 2\n")
    (bin_dir / "crash").chmod(0o755)
    with pytest.raises(PluginError, match=r"CNI plugin crash \(ADD\) failed: panic: the end$"):
        plugin.run("ADD", {"type": "crash"}, invocation(bin_dir))


def test_a_silent_plugin_that_fails_or_is_killed_says_how_it_ended(bin_dir, tmp_path):
    for name, body, ending in (
        ("quits", "exit 3", "exit code 3"),
        ("killed", "kill -9 $$", "killed by SIGKILL"),
    ):
        (bin_dir / name).write_text(f"#!/bin/sh\ncat >/dev/null\n{body}\n")
        (bin_dir / name).chmod(0o755)
        with pytest.raises(PluginError, match=rf"CNI plugin {name} \(DEL\) failed: {ending}$"):
            plugin.run("DEL", {"type": name}, invocation(bin_dir))

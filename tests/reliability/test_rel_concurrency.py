"""Many requests at once: twenty `hyperctl run -d` together, then creates and removals
racing on one pod.

The pods use the bridge network, inside a network namespace the test makes
(hyperd runs in it, so its bridge, taps and nftables rules live and die
there), because only the bridge gives each pod an address of its own; the
machine's own network is checked unchanged afterwards.
"""

from __future__ import annotations

import sqlite3
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypercontainer.cli.client import Client

from tests.integration.network.hc_daemon import Daemon
from tests.reliability.support import SLEEPER, bridged_daemon
from tests.support.daemon import HYPERCTL, announced_pod, qemu_pids

pytestmark = [pytest.mark.vm, pytest.mark.root]

PODS = 20  # 128 MB each: 20 × (128 + ~100) MiB of host memory


def hyperctl(daemon: Daemon, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*HYPERCTL, "--config", str(daemon.config), *args],
        text=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=900,
    )


def at_once(daemon: Daemon, commands: list[list[str]]) -> list[subprocess.CompletedProcess]:
    with ThreadPoolExecutor(len(commands)) as pool:
        return list(pool.map(lambda args: hyperctl(daemon, *args), commands))


def one_line_or_ok(result: subprocess.CompletedProcess) -> bool:
    """Succeeded, or failed with exactly one line of error."""
    if result.returncode == 0:
        return True
    lines = result.stderr.splitlines()
    return result.returncode == 1 and len(lines) == 1 and lines[0].startswith("hyperctl ERROR: ")


def store_rows(daemon: Daemon, sql: str) -> list[tuple]:
    path = Path(daemon.config.parent) / "state" / "state.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as db:
        return db.execute(sql).fetchall()


def store_is_consistent(daemon: Daemon) -> None:
    assert store_rows(daemon, "PRAGMA integrity_check") == [("ok",)]
    orphans = store_rows(
        daemon, "SELECT name FROM containers WHERE pod_id NOT IN (SELECT id FROM pods)"
    )
    assert orphans == []


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    with bridged_daemon(tmp_path_factory.mktemp("concurrency"), "concurrency") as (hyperd, _):
        yield hyperd


@pytest.fixture(scope="module")
def pods(daemon) -> list[dict]:
    results = at_once(daemon, [["run", "-d", "busybox", *SLEEPER]] * PODS)
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    announced = [announced_pod(r.stdout) for r in results]
    return [api(daemon, f"/pods/{pod}") for pod in announced]


def api(daemon: Daemon, path: str):
    """One GET through hyperctl's own client."""
    return Client(str(daemon.config), autostart=False).request("GET", path)


def test_twenty_runs_at_once_give_twenty_distinct_running_pods(daemon, pods):
    assert len(pods) == PODS
    assert all(p["state"] == "running" for p in pods)
    for key in ("id", "name", "vm_name", "address"):
        values = [p[key] for p in pods]
        assert len(set(values)) == PODS and all(values), (key, values)
    assert sorted(qemu_pids(daemon.run_root)) == sorted(p["vm"]["pid"] for p in pods)
    # Each guest has the address its record names.
    for pod in pods[:3]:
        shown = hyperctl(daemon, "exec", pod["id"], "ip", "-4", "-o", "addr", "show", "eth0")
        assert f" {pod['address']}/" in shown.stdout, shown


def test_creates_and_removals_racing_on_one_pod(daemon, pods):
    pod = pods[0]["id"]
    names = [f"race-{i}" for i in range(8)]
    creates = [["create", "-c", "--name", name, pod, "busybox", "true"] for name in names]
    removals = [["rm", "-c", name] for name in names[:4]]
    results = at_once(daemon, creates + removals)
    assert all(one_line_or_ok(r) for r in results), [r.stderr for r in results]
    created = {n for n, r in zip(names, results[:8], strict=True) if r.returncode == 0}
    removed = {n for n, r in zip(names[:4], results[8:], strict=True) if r.returncode == 0}
    assert removed <= created
    listing = api(daemon, f"/containers?pod={pod}")
    assert {c["name"] for c in listing} == {pod} | (created - removed)
    store_is_consistent(daemon)


def test_a_pod_removed_while_containers_are_created_in_it(daemon, pods):
    pod = pods[1]
    creates = [
        ["create", "-c", "--name", f"late-{i}", pod["id"], "busybox", "true"] for i in range(8)
    ]
    results = at_once(daemon, [*creates[:4], ["rm", pod["id"]], *creates[4:]])
    assert all(one_line_or_ok(r) for r in results), [r.stderr for r in results]
    assert results[4].returncode == 0, results[4]
    containers = api(daemon, "/containers")
    assert all(c["pod_id"] != pod["id"] for c in containers)
    assert pod["vm"]["pid"] not in qemu_pids(daemon.run_root)
    assert not (daemon.run_root / "pods" / pod["id"]).exists()
    store_is_consistent(daemon)

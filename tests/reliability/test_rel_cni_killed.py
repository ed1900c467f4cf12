"""kill -9 of hyperd during `hyperctl rm` of a pod on the cni network, once its VM
has stopped: before CNI DEL, between two plugins' DEL, and after the bridge plugin
released the pod's address but before its namespace, cached result and record went.

hyperd runs in a network namespace the test makes (only its network: the pods'
named namespaces are the machine's, as a hyperd started again finds them), with
Debian's CNI plugins behind stand-ins that stop at the chosen point
(tests/reliability/cni_hold.py). A second pod runs throughout. After the next
start the cut pod is gone and CNI holds exactly what it held before that pod ran:
the other pod's lease, cached result, namespace and record, its veth, and no rule
of the cut pod's published port; the release was completed once.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.network.hc_cni import NOTHING, cni_section, held
from tests.integration.network.hc_daemon import Daemon
from tests.integration.network.hc_netns import NetNs, host_network
from tests.reliability.cni_hold import REAL, HoldingPlugins
from tests.reliability.support import SLEEPER, background, reach
from tests.support.daemon import HYPERCTL, qemu_pids

pytestmark = [
    pytest.mark.vm,
    pytest.mark.root,
    pytest.mark.skipif(
        os.geteuid() != 0 or not (REAL / "bridge").exists(),
        reason="needs root and containernetworking-plugins",
    ),
]


@dataclass(frozen=True)
class Point:
    hold: str  # where the plugins stop (cni_hold.py)
    # What the cut pod still has there: its lease, its port's DNAT rule, its veth.
    lease: bool
    rule: bool
    veth: bool


POINTS = {
    "VM stopped, CNI DEL not begun": Point("DEL before portmap", True, True, True),
    "portmap released, bridge not yet": Point("DEL before bridge", True, False, True),
    "address released, namespace and record not yet": Point(
        "DEL after bridge", False, False, False
    ),
}
FREE_PORT = "import socket; s = socket.socket(); s.bind(('', 0)); print(s.getsockname()[1])"


@dataclass
class Setup:
    daemon: Daemon
    ns: NetNs
    plugins: HoldingPlugins
    workdir: Path

    def veths(self) -> list[str]:
        return sorted(name for name in self.ns.links() if name.startswith("veth"))

    def nat_rules(self) -> str:
        return self.ns.sh("iptables-save", "-t", "nat")

    def cut(self, hold: str, args: list[str], at_the_point: Callable[[], None]) -> str:
        """Run `hyperctl ARGS`; once the plugins stop at `hold`, kill -9 hyperd, check
        `at_the_point()` (nothing moves while no hyperd runs) and start hyperd again.
        The cut command's one line of error."""
        daemon = self.daemon
        self.plugins.hold(hold)
        command = background([*daemon.prefix, *HYPERCTL, "--config", str(daemon.config), *args])
        try:
            reach(self.plugins.reached, command)
            daemon.kill()
            at_the_point()
        finally:  # whatever failed: no hyperd left waiting on a stand-in, and one running
            if daemon.process.poll() is None:
                daemon.kill()
            self.plugins.release()
            try:
                _, err = command.communicate(timeout=120)
            finally:
                command.kill()
                daemon.start()
        assert command.returncode == 1 and len(err.splitlines()) == 1, err
        return err


@pytest.fixture(scope="module")
def cni(tmp_path_factory):
    """A hyperd on the cni network in its own namespace, one pod (`keeper`) running."""
    workdir = tmp_path_factory.mktemp("cni")
    before = host_network()
    ns = NetNs.create("-relcni")
    plugins = HoldingPlugins(workdir / "plugins")
    config = cni_section(workdir) + f'bin_dir = "{plugins.bin_dir}"\n'
    daemon = None
    try:
        daemon = Daemon(workdir, "cni", ns.name, config=config, netns_only=True)
        daemon.hyperctl("run", "-d", "--name", "keeper", "busybox", *SLEEPER)
        yield Setup(daemon, ns, plugins, workdir)
        plugins.release()
    finally:
        if daemon is not None:
            daemon.stop()  # every pod removed: everything CNI held is released
        ns.delete()
    assert held(workdir) == NOTHING
    assert host_network() == before


@pytest.mark.parametrize("point", list(POINTS))
def test_hyperd_killed_while_rm_releases_the_cni_network(cni: Setup, point: str) -> None:
    daemon, name = cni.daemon, f"cut{list(POINTS).index(point)}"
    baseline = {"held": held(cni.workdir), "veths": cni.veths()}
    port = cni.ns.sh("python3", "-c", FREE_PORT).strip()
    daemon.hyperctl("run", "-d", "--name", name, "--publish", f"{port}:80", "busybox", *SLEEPER)
    assert len(held(cni.workdir)["leases"]) == len(baseline["held"]["leases"]) + 1
    assert f"--dport {port}" in cni.nat_rules()  # portmap's DNAT: there is a rule to release

    at = POINTS[point]

    def as_named() -> None:
        there = held(cni.workdir)
        assert (len(there["leases"]) > len(baseline["held"]["leases"])) is at.lease, there
        assert (f"--dport {port}" in cni.nat_rules()) is at.rule
        assert (len(cni.veths()) > len(baseline["veths"])) is at.veth
        assert there["records"] > baseline["held"]["records"]  # the record goes last

    cni.cut(at.hold, ["rm", name], as_named)
    assert daemon.hyperctl("list", "-q").split() == ["keeper"]
    assert held(cni.workdir) == baseline["held"]
    assert cni.veths() == baseline["veths"]
    assert f"--dport {port}" not in cni.nat_rules()
    assert len(qemu_pids(daemon.run_root)) == 1
    released = [
        line
        for line in daemon.log.read_text().splitlines()
        if '"cni released"' in line and f'"pod_id": "{name}"' in line
    ]
    assert len(released) == 1, released
    assert daemon.hyperctl("exec", "keeper", "echo", "alive") == "alive\n"


def test_hyperd_killed_between_two_plugins_add(cni: Setup) -> None:
    # bridge has leased the address and made the veth, portmap's ADD has not run: the
    # cut run's pod goes, and the record written before ADD has the next start DEL it.
    daemon, baseline = cni.daemon, {"held": held(cni.workdir), "veths": cni.veths()}

    def leased() -> None:
        assert len(held(cni.workdir)["leases"]) == len(baseline["held"]["leases"]) + 1

    cni.cut("ADD after bridge", ["run", "-d", "busybox", *SLEEPER], leased)
    assert daemon.hyperctl("list", "-q").split() == ["keeper"]
    assert held(cni.workdir) == baseline["held"]
    assert cni.veths() == baseline["veths"]


def test_a_plugin_killed_during_del_fails_rm_in_one_line_and_rm_again_releases(
    cni: Setup,
) -> None:
    daemon, baseline = cni.daemon, {"held": held(cni.workdir), "veths": cni.veths()}
    daemon.hyperctl("run", "-d", "--name", "unlucky", "busybox", *SLEEPER)
    cni.plugins.hold("DEL before bridge")
    rm = background([*daemon.prefix, *HYPERCTL, "--config", str(daemon.config), "rm", "unlucky"])
    try:
        reach(cni.plugins.reached, rm)
        plugin = cni.plugins.holder()
        assert plugin is not None
        os.kill(plugin, signal.SIGKILL)
        _, err = rm.communicate(timeout=120)
    finally:
        cni.plugins.release()
        rm.kill()
    assert rm.returncode == 1 and len(err.splitlines()) == 1, err
    assert err == "hyperctl ERROR: CNI plugin bridge (DEL) failed: killed by SIGKILL\n", err
    assert "unlucky" in daemon.hyperctl("list", "-q").split()  # kept: it still holds CNI state
    daemon.hyperctl("rm", "unlucky")
    assert daemon.hyperctl("list", "-q").split() == ["keeper"]
    assert held(cni.workdir) == baseline["held"]
    assert cni.veths() == baseline["veths"]


def test_the_next_pod_gets_an_address_of_its_own(cni: Setup) -> None:
    before = held(cni.workdir)
    cni.daemon.hyperctl("run", "-d", "--name", "next", "busybox", *SLEEPER)
    after = held(cni.workdir)
    (address,) = set(after["leases"]) - set(before["leases"])
    assert len(after["leases"]) == len(before["leases"]) + 1
    assert address in cni.daemon.hyperctl("list")

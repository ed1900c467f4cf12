"""The cni driver with Debian's real CNI plugins, without a VM.

The driver runs in a child process moved into a namespace the test made
(the "host" as CNI sees it: its bridge, iptables rules and sysctls land
there); the pods' own namespaces are named ones it creates and deletes. The
`netns` fixture checks the machine's own network is unchanged at the end.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from hypercontainer.config import Config
from hypercontainer.drivers import PortForward
from hypercontainer.errors import DriverError, UserError
from hypercontainer_plugins.network.cni import CniNetwork

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(
        not Path("/usr/lib/cni/bridge").exists(), reason="needs containernetworking-plugins"
    ),
]


def cni_config(tmp_path: Path, **cni) -> Config:
    return Config(
        state_root=tmp_path / "state",
        run_root=tmp_path / "run",
        cache_root=tmp_path / "cache",
        network="cni",
    ).with_table(
        "cni", conf_dir=str(tmp_path / "net.d"), cache_dir=str(tmp_path / "cnicache"), **cni
    )


# Pod namespaces that existed before this module (another hyperd's): not ours to count.
OTHERS = {p.name for p in Path("/run/netns").glob("hc-????????????")}
NOTHING = {"leases": [], "cached": [], "namespaces": []}


def leftovers(tmp_path: Path) -> dict:
    """Everything an attachment holds, as seen from outside the driver."""
    data = tmp_path / "state" / "cni" / "networks"
    return {
        "leases": sorted(p.name for p in data.glob("*/*") if p.name[0].isdigit()),
        "cached": sorted(p.name for p in (tmp_path / "cnicache" / "results").glob("*")),
        "namespaces": sorted(
            p.name for p in Path("/run/netns").glob("hc-????????????") if p.name not in OTHERS
        ),
    }


def nat_rules() -> str:
    return subprocess.run(
        ["iptables-save", "-t", "nat"], capture_output=True, text=True, check=True
    ).stdout


def attach_then_detach(config: Config) -> dict:
    network = CniNetwork(config)
    attachment = network.attach("web", [PortForward("tcp", "", 8080, 80)])
    pod_ns = Path(attachment.netns)
    seen = {
        "attachment": attachment,
        "pod_ns_exists": pod_ns.exists(),
        "eth0": json.loads(
            subprocess.run(
                ["ip", "-n", pod_ns.name, "-j", "link", "show", "eth0"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )[0],
        "rules": nat_rules(),
        "forwards": network.forwards("web", attachment),
        "held": leftovers(config.state_root.parent),
    }
    network.detach("web", attachment)
    network.detach("web", attachment)  # a second release finds nothing to release
    seen["rules_after"] = nat_rules()
    seen["pod_ns_after"] = pod_ns.exists()
    return seen


def test_a_pod_gets_its_address_from_host_local_and_gives_it_back(netns, tmp_path):
    host = netns("-cnihost")
    seen = host.run(attach_then_detach, cni_config(tmp_path))
    attachment = seen["attachment"]
    address = attachment.address.split("/")[0]
    assert attachment.address == "10.123.0.2/16" and attachment.gateway == "10.123.0.1"
    assert seen["held"]["leases"] == [address]
    assert len(seen["held"]["cached"]) == 1 and seen["held"]["cached"][0].endswith("-eth0")
    assert seen["pod_ns_exists"] and Path(attachment.netns).name in seen["held"]["namespaces"]
    assert attachment.mac == seen["eth0"]["address"] and attachment.interface == "eth0"
    assert attachment.tap and attachment.netns.startswith("/run/netns/hc-")
    assert f"--dport 8080 -j DNAT --to-destination {address}:80" in seen["rules"]
    assert seen["forwards"] == [PortForward("tcp", "0.0.0.0", 8080, 80)]
    written = json.loads((tmp_path / "net.d" / "hypercontainer.conflist").read_text())
    assert [p["type"] for p in written["plugins"]] == ["bridge", "portmap"]
    assert written["plugins"][0]["ipam"]["type"] == "host-local"

    # Released: no lease, no cache entry, no namespace, no DNAT rule.
    assert leftovers(tmp_path) == NOTHING
    assert not seen["pod_ns_after"]
    assert "--to-destination" not in seen["rules_after"]


FAILING = {
    "cniVersion": "1.0.0",
    "name": "failing",
    "plugins": [
        {
            "type": "bridge",
            "bridge": "hc-cnifail",
            "isGateway": True,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": "10.124.0.0/24"}]],
                "dataDir": "DATA",
            },
        },
        # Runs after the address is taken: its failure must give the address back.
        {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.no_such_setting": "1"}},
    ],
}


def attach_failing(config: Config) -> tuple[Exception, list]:
    network = CniNetwork(config)
    with pytest.raises(DriverError) as failure:
        network.attach("web", [])
    return failure.value, network.records.all()


def test_a_failing_plugin_is_one_line_and_leaves_nothing(netns, tmp_path):
    host = netns("-cnihost")
    data = tmp_path / "state" / "cni" / "networks"
    conf = json.dumps(FAILING).replace("DATA", str(data))
    (tmp_path / "net.d").mkdir()
    (tmp_path / "net.d" / "10-failing.conflist").write_text(conf)
    error, records = host.run(attach_failing, cni_config(tmp_path, network="failing"))
    message = str(error)
    assert message.startswith("CNI plugin tuning (ADD) failed: ") and "\n" not in message
    assert records == []
    assert leftovers(tmp_path) == NOTHING
    assert [name for name in host.links() if name.startswith("veth")] == []


def refusals(config: Config) -> list[str]:
    network = CniNetwork(config)
    messages = []
    for name, forwards in (("missing", []), ("bad", [])):
        network.network_name = name
        with pytest.raises(UserError) as refused:
            network.attach("web", forwards)
        messages.append(str(refused.value))
    network.network_name = "hypercontainer"
    first = network.attach("one", [PortForward("tcp", "", 8081, 80)])
    try:
        with pytest.raises(UserError) as refused:
            network.attach("two", [PortForward("tcp", "", 8081, 80)])
        messages.append(str(refused.value))
        messages.append(str(leftovers(config.state_root.parent)["leases"]))
        with pytest.raises(UserError) as refused:
            network.add_forward("one", first, PortForward("tcp", "", 8082, 80))
        messages.append(str(refused.value))
    finally:
        network.detach("one", first)
    return messages


def test_refusals(netns, tmp_path):
    host = netns("-cnihost")
    (tmp_path / "net.d").mkdir()
    (tmp_path / "net.d" / "20-bad.conflist").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "bad", "plugins": [{"type": "../../bin/sh"}]})
    )
    missing, bad, clash, leases, running = host.run(refusals, cni_config(tmp_path))
    assert missing == f"no CNI network 'missing' in {tmp_path / 'net.d'} (networks there: bad)"
    assert bad.endswith("plugins[0].type '../../bin/sh' is not a plugin name")
    assert clash == "host port 8081/tcp is mapped twice"
    assert leases == "['10.123.0.2']"  # the refused pod took nothing
    assert "cannot change them on a running pod" in running
    assert leftovers(tmp_path) == NOTHING


def attach_and_forget(config: Config) -> list:
    """An attach hyperd never recorded (it was killed), then the next start's recover()."""
    CniNetwork(config).attach("cut", [])
    held = leftovers(config.state_root.parent)
    network = CniNetwork(config)  # a new hyperd
    network.recover(attached=set())
    return [held, network.records.all()]


def test_recover_releases_what_no_pod_holds(netns, tmp_path):
    host = netns("-cnihost")
    held, records = host.run(attach_and_forget, cni_config(tmp_path))
    assert held["leases"] == ["10.123.0.2"] and len(held["namespaces"]) == 1
    assert records == []
    assert leftovers(tmp_path) == NOTHING

"""The bridge driver against the real kernel, inside network namespaces it cannot escape.

Every driver call runs in a child moved into a namespace the test created
(see hc_netns.py); the `netns` fixture asserts afterwards that the machine's
own links, addresses, routes, ruleset and ip_forward did not change.
"""

from __future__ import annotations

import multiprocessing
import os

import pytest
from hypercontainer.drivers import Cap, NetworkAttachment, PortForward
from hypercontainer.errors import NotFound, UserError
from hypercontainer.names import tap_name
from hypercontainer_plugins.network.bridge import BridgeNetwork
from hypercontainer_plugins.network.mac import mac_for

pytestmark = pytest.mark.root

WEB = [PortForward("tcp", "", 8080, 80), PortForward("udp", "127.0.0.1", 5353, 53)]


def attach(config, pod_id, forwards=()):
    return BridgeNetwork(config).attach(pod_id, list(forwards))


def detach(config, pod_id, attachment):
    BridgeNetwork(config).detach(pod_id, attachment)


def test_two_pods_then_none(config, netns):
    ns = netns()
    web = ns.run(attach, config, "web", WEB)
    db = ns.run(attach, config, "db")

    assert (web.kind, web.tap, web.mac) == ("tap", tap_name("web"), mac_for("web"))
    assert web.requires == {Cap.TAP_NETWORK} and web.forwards == []
    assert (web.address, db.address) == ("192.168.123.2/24", "192.168.123.3/24")
    assert web.gateway == db.gateway == "192.168.123.1"

    links = ns.links()
    assert links["hyper0"]["linkinfo"]["info_kind"] == "bridge"
    assert "UP" in links["hyper0"]["flags"]
    assert ns.addresses("hyper0") == ["192.168.123.1/24"]
    for pod in (web, db):
        assert links[pod.tap]["master"] == "hyper0"
        assert links[pod.tap]["linkinfo"]["info_data"]["type"] == "tap"
    assert ns.sysctl("ip_forward") == "1"
    assert ns.sysctl("conf/hyper0/route_localnet") == "1"

    table = ns.nft_table()
    assert f"chain pod-{web.tap}" in table and f"chain pod-{db.tap}" in table
    assert "tcp dport 8080 dnat to 192.168.123.2:80" in table
    assert "ip daddr 127.0.0.1 udp dport 5353 dnat to 192.168.123.2:53" in table
    assert "ip saddr 192.168.123.0/24 ip daddr != 192.168.123.0/24 masquerade" in table

    # Attach is idempotent per pod: same lease, no second tap.
    assert ns.run(attach, config, "web", WEB).address == web.address

    ns.run(detach, config, "web", web)
    assert web.tap not in ns.links() and db.tap in ns.links()
    table = ns.nft_table()
    assert f"pod-{web.tap}" not in table and "dnat to" not in table and f"pod-{db.tap}" in table

    ns.run(detach, config, "db", db)
    assert ns.nft_table() is None
    assert set(ns.links()) == {"lo"}
    # Detaching again tolerates that everything is gone.
    ns.run(detach, config, "db", db)


def test_configured_bridge_and_subnet(config, netns):
    ns = netns()
    config = config.with_table("bridge", name="hcbr-test", subnet="10.77.0.0/16")
    pod = ns.run(attach, config, "p", [PortForward("tcp", "", 9000, 90)])
    assert (pod.address, pod.gateway) == ("10.77.0.2/16", "10.77.0.1")
    assert ns.addresses("hcbr-test") == ["10.77.0.1/16"]
    assert 'oifname "hcbr-test"' in ns.nft_table()
    ns.run(detach, config, "p", pod)
    assert set(ns.links()) == {"lo"} and ns.nft_table() is None


def _attach_many(config, pod_ids):
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(len(pod_ids)) as pool:
        return pool.starmap(
            attach,
            [
                (config, pod_id, [PortForward("tcp", "", 7000 + i, 80)])
                for i, pod_id in enumerate(pod_ids)
            ],
        )


def _detach_many(config, attachments):
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(len(attachments)) as pool:
        pool.starmap(detach, [(config, f"pod{i}", a) for i, a in enumerate(attachments)])


def test_concurrent_runs_and_removals(config, netns):
    ns = netns()
    pods = [f"pod{i}" for i in range(5)]
    attachments = ns.run(_attach_many, config, pods)
    addresses = [a.address for a in attachments]
    assert len(set(addresses)) == len(pods)
    links, table = ns.links(), ns.nft_table()
    for i, a in enumerate(attachments):
        assert links[a.tap]["master"] == "hyper0"
        assert f"tcp dport {7000 + i} dnat to {a.address.split('/')[0]}:80" in table
    ns.run(_detach_many, config, attachments)
    assert ns.nft_table() is None and set(ns.links()) == {"lo"}


def test_port_conflicts_are_refused_before_anything_changes(config, netns):
    ns = netns()
    web = ns.run(attach, config, "web", WEB)
    before = (ns.devices(), ns.nft_table())
    with pytest.raises(UserError, match="8080/tcp is mapped twice"):
        ns.run(attach, config, "other", [PortForward("tcp", "", 8080, 81)])
    assert (ns.devices(), ns.nft_table()) == before
    ns.run(detach, config, "web", web)

    # A host process already listening on the port: refused, and nothing is left behind.
    listener = ns.popen(
        "python3",
        "-c",
        (
            "import socket,sys; s=socket.socket(); s.bind(('0.0.0.0', 8080)); s.listen();"
            "print('ready', flush=True); sys.stdin.read()"
        ),
    )
    try:
        assert listener.stdout.readline().strip() == "ready"
        with pytest.raises(UserError, match="8080/tcp is already in use"):
            ns.run(attach, config, "web", WEB)
        assert set(ns.links()) == {"lo"} and ns.nft_table() is None
        assert ns.run(_lease_count, config) == 0
    finally:
        listener.kill()
        listener.wait()


def _lease_count(config):
    with BridgeNetwork(config).leases.transaction() as txn:
        return len(txn.leases())


def _add_then_remove(config, pod_id, attachment):
    network = BridgeNetwork(config)
    added = network.add_forward(pod_id, attachment, PortForward("tcp", "", 8443, 443))
    listed = network.forwards(pod_id, attachment)
    return added, listed


def _remove(config, pod_id, attachment, forward):
    return BridgeNetwork(config).remove_forward(pod_id, attachment, forward)


def test_add_and_remove_forwards_of_a_running_pod(config, netns):
    ns = netns()
    web = ns.run(attach, config, "web", WEB[:1])
    added, listed = ns.run(_add_then_remove, config, "web", web)
    assert added == PortForward("tcp", "0.0.0.0", 8443, 443)
    assert listed == [PortForward("tcp", "0.0.0.0", 8080, 80), added]
    assert "tcp dport 8443 dnat to 192.168.123.2:443" in ns.nft_table()

    ns.run(_remove, config, "web", web, PortForward("tcp", "", 8080, 80))
    table = ns.nft_table()
    assert "dport 8080" not in table and "dport 8443" in table
    with pytest.raises(NotFound, match="no port mapping"):
        ns.run(_remove, config, "web", web, PortForward("tcp", "", 8080, 80))
    with pytest.raises(NotFound, match="no address on the bridge"):
        ns.run(_add_then_remove, config, "ghost", web)
    ns.run(detach, config, "web", web)


def _adopt(config, pod_id, attachment):
    BridgeNetwork(config).adopt(pod_id, attachment)


def test_adopt_recreates_the_host_side(config, netns):
    ns = netns()
    web = ns.run(attach, config, "web", WEB)
    table = ns.nft_table()
    # What a reboot (or a careless admin) does to the host state.
    ns.sh("nft", "delete", "table", "ip", "hypercontainer")
    ns.sh("ip", "link", "del", web.tap)
    ns.sh("ip", "link", "del", "hyper0")

    ns.run(_adopt, config, "web", web)
    assert ns.nft_table() == table
    assert ns.links()[web.tap]["master"] == "hyper0"
    assert ns.addresses("hyper0") == ["192.168.123.1/24"]

    # A pod whose lease the database lost is taken back from its attachment.
    lost = NetworkAttachment(
        kind="tap", mac=mac_for("lost"), tap=tap_name("lost"), address="192.168.123.9/24"
    )
    ns.run(_adopt, config, "lost", lost)
    assert tap_name("lost") in ns.links()
    assert ns.run(attach, config, "lost").address == "192.168.123.9/24"
    ns.run(detach, config, "lost", lost)

    for bad, message in [
        (NetworkAttachment(kind="user", address="10.0.2.15/24"), "no bridge attachment"),
        (NetworkAttachment(kind="tap", tap="hcx", address="10.1.0.5/24"), "not a pod address"),
        (NetworkAttachment(kind="tap", tap="hcx", address="192.168.123.1/24"), "not a pod address"),
        (NetworkAttachment(kind="tap", tap="a b", address="192.168.123.7/24"), "tap name"),
        (NetworkAttachment(kind="tap", tap="hcy", address=web.address), "already leased"),
    ]:
        with pytest.raises(UserError, match=message):
            ns.run(_adopt, config, "bad", bad)
    ns.run(detach, config, "web", web)
    assert set(ns.links()) == {"lo"}


def _as_nobody(config):
    os.setgid(65534)
    os.setuid(65534)
    return attach(config, "p")


def test_refused_without_root(config, netns):
    ns = netns()
    with pytest.raises(UserError, match="needs root"):
        ns.run(_as_nobody, config)
    assert set(ns.links()) == {"lo"}

"""The cni driver's pieces that need no plugin: conflists, results, the cache, the records."""

from __future__ import annotations

import base64
import json

import pytest
from hypercontainer.drivers import PortForward
from hypercontainer.errors import DriverError, UserError
from hypercontainer_plugins.network.cni import conflist, result
from hypercontainer_plugins.network.cni.cache import ResultCache
from hypercontainer_plugins.network.cni.records import Record, Records

BRIDGE = {"cniVersion": "1.0.0", "name": "pods", "plugins": [{"type": "bridge"}]}


def write(directory, name: str, data) -> None:
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(data if isinstance(data, str) else json.dumps(data))


def test_lists_are_found_by_name_single_plugin_files_become_lists(tmp_path):
    write(tmp_path, "05-broken.conflist", "{not json")
    write(tmp_path, "10-pods.conflist", BRIDGE)
    write(tmp_path, "20-one.conf", {"cniVersion": "0.4.0", "name": "one", "type": "ptp"})
    write(tmp_path, "30-ignored.txt", {"cniVersion": "1.0.0", "name": "txt", "plugins": []})
    one = conflist.find(tmp_path, "one")
    assert (one.name, one.cni_version, [p["type"] for p in one.plugins]) == (
        "one",
        "0.4.0",
        ["ptp"],
    )
    assert one.checkable and conflist.find(tmp_path, "pods").plugins == [{"type": "bridge"}]
    assert conflist.find(tmp_path, "").name == "pods"  # empty name: the first file's
    assert conflist.find(tmp_path, "absent") is None
    assert conflist.names(tmp_path) == ["pods", "one"]
    assert conflist.find(tmp_path / "missing", "pods") is None


@pytest.mark.parametrize(
    "data, message",
    [
        ({**BRIDGE, "cniVersion": "0.2.0"}, "cniVersion '0.2.0' is not supported"),
        ({**BRIDGE, "name": "a/b"}, "'name' must be a short name"),
        ({**BRIDGE, "plugins": []}, "'plugins' must be a non-empty list"),
        ({**BRIDGE, "plugins": [{"type": "../../bin/sh"}]}, "plugins[0].type '../../bin/sh'"),
        ({**BRIDGE, "plugins": [{"type": ".hidden"}]}, "plugins[0].type '.hidden'"),
        ({**BRIDGE, "plugins": ["bridge"]}, "plugins[0] must be an object with a 'type'"),
        ([BRIDGE], "expected a JSON object"),
    ],
)
def test_bad_lists_are_refused_in_one_line(data, message):
    with pytest.raises(UserError) as refused:
        conflist.parse(json.dumps(data), "/etc/cni/net.d/x.conflist")
    assert str(refused.value).startswith("CNI config /etc/cni/net.d/x.conflist: ")
    assert message in str(refused.value)


def test_the_default_list_is_written_once_and_never_over_another_file(tmp_path):
    network = conflist.write_default(tmp_path / "net.d", "hypercontainer", tmp_path / "data")
    assert [p["type"] for p in network.plugins] == ["bridge", "portmap"]
    assert network.plugins[0]["ipam"] == {
        "type": "host-local",
        "ranges": [[{"subnet": "10.123.0.0/16"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": str(tmp_path / "data"),
    }
    assert network.plugins[1]["capabilities"] == {"portMappings": True}
    assert conflist.find(tmp_path / "net.d", "hypercontainer") == network
    with pytest.raises(
        UserError, match="hypercontainer.conflist exists but holds no network named 'other'"
    ):
        conflist.write_default(tmp_path / "net.d", "other", tmp_path / "data")


V1 = {
    "cniVersion": "1.0.0",
    "interfaces": [
        {"name": "cni0", "mac": "aa:aa:aa:aa:aa:aa"},
        {"name": "veth1", "mac": "bb:bb:bb:bb:bb:bb"},
        {"name": "eth0", "mac": "cc:cc:cc:cc:cc:cc", "sandbox": "/run/netns/x"},
    ],
    "ips": [
        {"address": "10.22.0.1/16", "interface": 0},
        {"address": "10.22.0.5/16", "gateway": "10.22.0.1", "interface": 2},
    ],
    "dns": {"nameservers": ["10.96.0.10", "not-an-ip"]},
}


def test_results_of_both_spec_versions_give_the_sandbox_addresses():
    assert result.read(V1, "eth0", "n") == result.PodAddressing(["10.22.0.5/16"], ["10.96.0.10"])
    old = {
        "cniVersion": "0.4.0",
        "interfaces": V1["interfaces"],
        "ips": [{"version": "4", **ip} for ip in V1["ips"]],
    }
    assert result.read(old, "eth0", "n").addresses == ["10.22.0.5/16"]
    bare = {"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "10.9.0.2/24"}]}
    assert result.read(bare, "eth0", "n") == result.PodAddressing(["10.9.0.2/24"])
    with pytest.raises(DriverError, match="CNI network n gave the pod no address"):
        result.read({"cniVersion": "1.0.0", "ips": []}, "eth0", "n")
    with pytest.raises(DriverError, match="bad address '10.9.0.300/24'"):
        result.read({"ips": [{"address": "10.9.0.300/24"}]}, "eth0", "n")


def test_the_cache_is_libcnis(tmp_path):
    cache = ResultCache(tmp_path)
    cache.write(
        "pods", "c0ffee", "eth0", "/run/netns/hc-1", '{"name": "pods"}', {"portMappings": []}, V1
    )
    path = tmp_path / "results" / "pods-c0ffee-eth0"
    entry = json.loads(path.read_text())
    assert entry["kind"] == "cniCacheV1" and entry["containerId"] == "c0ffee"
    assert base64.b64decode(entry["config"]) == b'{"name": "pods"}'
    assert (entry["ifName"], entry["networkName"], entry["netns"]) == (
        "eth0",
        "pods",
        "/run/netns/hc-1",
    )
    assert cache.result("pods", "c0ffee", "eth0") == V1
    path.write_text("{torn")
    assert cache.result("pods", "c0ffee", "eth0") is None
    cache.remove("pods", "c0ffee", "eth0")
    cache.remove("pods", "c0ffee", "eth0")
    assert cache.result("pods", "c0ffee", "eth0") is None


def test_records_refuse_a_host_port_another_pod_holds(tmp_path):
    records = Records(tmp_path / "state.db")
    web = Record(
        "web", "c1", "hc-c1", "eth0", "pods", "{}", [PortForward("tcp", "0.0.0.0", 8080, 80)]
    )
    records.add(web)
    clash = Record(
        "db", "c2", "hc-c2", "eth0", "pods", "{}", [PortForward("tcp", "127.0.0.1", 8080, 5432)]
    )
    with pytest.raises(UserError, match="host port 8080/tcp is mapped twice"):
        records.add(clash)
    assert records.all() == [web] and records.of("web") == web and records.of("db") is None
    records.remove("c1")
    assert records.all() == []


def test_removing_an_entry_removes_a_write_cut_short(tmp_path):
    # hyperd killed while it wrote the entry leaves the temporary file beside it
    cache = ResultCache(tmp_path)
    results = tmp_path / "results"
    results.mkdir()
    (results / ".pods-c0ffee-eth0.tmp").write_text('{"kind": "cniCa')
    assert cache.result("pods", "c0ffee", "eth0") is None
    cache.remove("pods", "c0ffee", "eth0")
    assert list(results.iterdir()) == []

from hypercontainer.drivers import PortForward
from hypercontainer_plugins.network.bridge import nft


def chain(script: str, name: str) -> list[str]:
    """The rules of one chain in a rendered script."""
    lines = script.splitlines()
    start = lines.index(f"\tchain {name} {{")
    end = lines.index("\t}", start)
    return [line.strip() for line in lines[start + 1 : end]]


PODS = [
    nft.PodRules(
        "web",
        "hcaaaaaaaaaaaa",
        "192.168.123.2",
        [
            PortForward("tcp", "0.0.0.0", 8080, 80),
            PortForward("udp", "127.0.0.1", 5353, 53),
        ],
    ),
    nft.PodRules("db", "hcbbbbbbbbbbbb", "192.168.123.3", []),
]


def test_script_replaces_only_our_table_atomically():
    script = nft.render("hyper0", "192.168.123.0/24", PODS)
    lines = script.splitlines()
    assert lines[:3] == [
        "add table ip hypercontainer",
        "delete table ip hypercontainer",
        "table ip hypercontainer {",
    ]
    assert all(
        not line.startswith(("flush", "delete table inet", "delete table ip filter"))
        for line in lines
    )
    assert sum(line.startswith("table ") for line in lines) == 1


def test_port_mappings_per_pod_chain():
    script = nft.render("hyper0", "192.168.123.0/24", PODS)
    assert chain(script, "portmaps") == ["jump pod-hcaaaaaaaaaaaa", "jump pod-hcbbbbbbbbbbbb"]
    assert chain(script, "pod-hcaaaaaaaaaaaa") == [
        'comment "web"',
        "tcp dport 8080 dnat to 192.168.123.2:80",
        "ip daddr 127.0.0.1 udp dport 5353 dnat to 192.168.123.2:53",
    ]
    assert chain(script, "pod-hcbbbbbbbbbbbb") == ['comment "db"']
    for hook in ("prerouting", "output"):
        assert chain(script, hook)[1] == "fib daddr type local jump portmaps"


def test_nat_and_forwarding_for_the_subnet():
    script = nft.render("br-x", "10.9.0.0/24", [])
    assert chain(script, "postrouting")[1:] == [
        "ip saddr 10.9.0.0/24 ip daddr != 10.9.0.0/24 masquerade",
        'oifname "br-x" ct status dnat ip saddr 10.9.0.0/24 masquerade',
        'oifname "br-x" ip saddr 127.0.0.0/8 masquerade',
    ]
    assert chain(script, "forward")[1:] == ['iifname "br-x" accept', 'oifname "br-x" accept']
    assert chain(script, "portmaps") == []


def test_pod_id_cannot_break_out_of_the_comment():
    pod = nft.PodRules('evil"; flush ruleset; "', "hccccccccccccc", "192.168.123.4", [])
    rules = chain(nft.render("hyper0", "192.168.123.0/24", [pod]), "pod-hccccccccccccc")
    assert rules == ['comment "evil___flush_ruleset___"']

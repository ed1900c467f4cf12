from hypercontainer_plugins.network.resolv import nameservers


def test_nameservers_skip_loopback_and_ipv6(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "# comment\nsearch example.org\nnameserver 127.0.0.53\nnameserver 10.1.2.3\n"
        "nameserver fe80::1\nnameserver 10.1.2.3\nnameserver 9.9.9.9\nnameserver bogus\n"
        "nameserver 1.1.1.1\nnameserver 8.8.8.8\n"
    )
    assert nameservers(conf) == ["10.1.2.3", "9.9.9.9", "1.1.1.1"]


def test_missing_file(tmp_path):
    assert nameservers(tmp_path / "absent") == []

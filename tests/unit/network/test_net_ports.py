import pytest
from hypercontainer.drivers import PortForward
from hypercontainer.errors import UserError
from hypercontainer_plugins.network import ports


def test_single_port():
    assert ports.expand("8080", 80) == [PortForward("tcp", "", 8080, 80)]


def test_ranges_map_pairwise():
    forwards = ports.expand("3000-3010", "1300-1310", "udp", "127.0.0.1")
    assert len(forwards) == 11
    assert forwards[0] == PortForward("udp", "127.0.0.1", 3000, 1300)
    assert forwards[-1] == PortForward("udp", "127.0.0.1", 3010, 1310)
    assert all(f.host_port - f.guest_port == 1700 for f in forwards)


@pytest.mark.parametrize(
    ("host", "guest", "message"),
    [
        ("3000-3010", "1300", "range mismatch"),
        ("3000", "1300-1301", "range mismatch"),
        ("3010-3000", "1300", "ends before it starts"),
        ("0", "80", "ports are 1-65535"),
        ("70000", "80", "ports are 1-65535"),
        ("80;rm", "80", "expected a port"),
        ("", "80", "expected a port"),
        ("1-65535", "1-65535", "at most 1024"),
    ],
)
def test_bad_ranges(host, guest, message):
    with pytest.raises(UserError, match=message):
        ports.expand(host, guest)


def test_bad_protocol_and_address():
    with pytest.raises(UserError, match="expected tcp or udp"):
        ports.expand(80, 80, "sctp")
    with pytest.raises(UserError, match="IPv4 address"):
        ports.expand(80, 80, "tcp", "localhost")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8080:80", [PortForward("tcp", "", 8080, 80)]),
        ("8080:80/udp", [PortForward("udp", "", 8080, 80)]),
        ("udp:8080:80", [PortForward("udp", "", 8080, 80)]),
        ("127.0.0.1:8080:80", [PortForward("tcp", "127.0.0.1", 8080, 80)]),
        ("0.0.0.0:8080:80/tcp", [PortForward("tcp", "0.0.0.0", 8080, 80)]),
        ("3000-3001:1300-1301", [PortForward("tcp", "", 3000, 1300),
                                 PortForward("tcp", "", 3001, 1301)]),
    ],
)
def test_parse_publish(text, expected):
    assert ports.parse_publish(text) == expected


@pytest.mark.parametrize("text", ["80", "a:b:c:d", "tcp:80:80/udp", "x" * 200, "1.2.3:80:80"])
def test_parse_publish_refuses(text):
    with pytest.raises(UserError):
        ports.parse_publish(text)


def test_duplicates_refused_across_addresses():
    a = PortForward("tcp", "127.0.0.1", 8080, 80)
    with pytest.raises(UserError, match="8080/tcp is mapped twice"):
        ports.check_unique([a, PortForward("tcp", "127.0.0.1", 8080, 81)])
    with pytest.raises(UserError, match="mapped twice"):
        ports.check_unique([a], taken=[PortForward("tcp", "0.0.0.0", 8080, 90)])
    # Another protocol or another specific address is a different socket.
    ports.check_unique([a, PortForward("udp", "127.0.0.1", 8080, 80),
                        PortForward("tcp", "127.0.0.2", 8080, 80)])


def test_normalise_fills_default_and_validates():
    given = [PortForward("TCP", "", 8080, 80), PortForward("udp", "10.0.0.1", 53, 53)]
    assert ports.normalise(given, "127.0.0.1") == [
        PortForward("tcp", "127.0.0.1", 8080, 80), PortForward("udp", "10.0.0.1", 53, 53)
    ]
    with pytest.raises(UserError, match="ports are 1-65535"):
        ports.normalise([PortForward("tcp", "", 8080, 0)], "127.0.0.1")

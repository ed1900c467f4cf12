import pytest
from hypercontainer.drivers import PortForward
from hypercontainer.errors import UserError
from hypercontainer_plugins.network import ports


def test_duplicates_refused_across_addresses():
    a = PortForward("tcp", "127.0.0.1", 8080, 80)
    with pytest.raises(UserError, match="8080/tcp is mapped twice"):
        ports.check_unique([a, PortForward("tcp", "127.0.0.1", 8080, 81)])
    with pytest.raises(UserError, match="mapped twice"):
        ports.check_unique([a], taken=[PortForward("tcp", "0.0.0.0", 8080, 90)])
    # Another protocol or another specific address is a different socket.
    ports.check_unique(
        [a, PortForward("udp", "127.0.0.1", 8080, 80), PortForward("tcp", "127.0.0.2", 8080, 80)]
    )


def test_too_many_forwards():
    many = [PortForward("tcp", "", port, port) for port in range(1, ports.MAX_FORWARDS + 2)]
    ports.check_unique(many[:-1])
    with pytest.raises(UserError, match="at most 1024 port mappings"):
        ports.check_unique(many)


def test_normalise_fills_default_and_validates():
    given = [PortForward("TCP", "", 8080, 80), PortForward("udp", "10.0.0.1", 53, 53)]
    assert ports.normalise(given, "127.0.0.1") == [
        PortForward("tcp", "127.0.0.1", 8080, 80),
        PortForward("udp", "10.0.0.1", 53, 53),
    ]


@pytest.mark.parametrize(
    ("forward", "message"),
    [
        (PortForward("tcp", "", 8080, 0), "container port 0: ports are 1-65535"),
        (PortForward("tcp", "", 65536, 80), "host port 65536: ports are 1-65535"),
        (PortForward("tcp", "", "80", 80), "host port 80: ports are 1-65535"),
        (PortForward("sctp", "", 80, 80), "expected tcp or udp"),
        (PortForward("tcp", "localhost", 80, 80), "expected an IPv4 address"),
        (PortForward("tcp", "::1", 80, 80), "expected an IPv4 address"),
    ],
)
def test_normalise_refuses(forward, message):
    with pytest.raises(UserError, match=message):
        ports.normalise([forward], "127.0.0.1")

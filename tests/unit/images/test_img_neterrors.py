"""Why a registry is unreachable, in the user's words: real failures on loopback."""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
from collections.abc import Iterator

import pytest
import requests
from hypercontainer.config import Config
from hypercontainer.errors import UserError
from hypercontainer_plugins.images.driver import OciImages
from hypercontainer_plugins.images.neterrors import explain

from tests.support.registry import free_port, make_certificate

RAW = ("ConnectionPool", "Max retries", "Caused by", "Errno", "object at 0x")


def failure(url: str, verify: bool = False, timeout: float = 2.0) -> requests.RequestException:
    try:
        requests.get(url, timeout=timeout, verify=verify)
    except requests.RequestException as e:
        return e
    raise AssertionError(f"{url} answered")


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


@pytest.fixture
def plain_http_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def self_signed_port(tmp_path) -> Iterator[int]:
    cert, key = make_certificate(tmp_path / "tls", "127.0.0.1")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_refused_connection():
    assert explain(failure(f"http://127.0.0.1:{free_port()}/v2/"), 15, 120) == (
        "connection refused"
    )


def test_no_answer(silent_port):
    error = failure(f"http://127.0.0.1:{silent_port}/v2/", timeout=0.3)
    assert explain(error, 15, 0.3) == "no answer within 0.3 s"


def test_tls_to_a_plain_http_server(plain_http_port):
    assert explain(failure(f"https://127.0.0.1:{plain_http_port}/v2/"), 15, 120) == (
        "TLS handshake failed (wrong version number): does it speak plain HTTP?"
    )


def test_untrusted_certificate(self_signed_port):
    error = failure(f"https://127.0.0.1:{self_signed_port}/v2/", verify=True)
    assert explain(error, 15, 120) == (
        "its TLS certificate is not trusted (self-signed certificate)"
    )


def test_unresolvable_name_and_unknown_failures():
    wrapped = requests.ConnectionError(socket.gaierror(-2, "Name or service not known"))
    assert explain(wrapped, 15, 120) == "its host name does not resolve"
    unreachable = requests.ConnectionError(OSError(101, "Network is unreachable"))
    assert explain(unreachable, 15, 120) == "network is unreachable"
    assert explain(requests.ConnectionError("???"), 15, 120) == "the connection failed"


def test_a_pull_from_a_dead_registry_names_it_and_says_why(tmp_path):
    images = OciImages(Config(state_root=tmp_path / "state"))
    dead = f"127.0.0.1:{free_port()}"
    with pytest.raises(UserError) as error:
        images.pull(f"{dead}/team/app:1")
    assert str(error.value) == f"cannot reach registry {dead}: connection refused"
    assert not any(raw in str(error.value) for raw in RAW)


def test_docker_hub_unreachable_names_its_address(tmp_path, monkeypatch):
    # docker.io is served from another host: the error names both (offline, the
    # address is made one that refuses, so the test is the same with or without network).
    dead = f"127.0.0.1:{free_port()}"
    monkeypatch.setattr("hypercontainer_plugins.images.registry.DOCKER_HUB_API", dead)
    images = OciImages(Config(state_root=tmp_path / "state"))
    with pytest.raises(UserError) as error:
        images.pull("busybox")
    assert str(error.value) == f"cannot reach registry docker.io ({dead}): connection refused"


def test_a_login_to_a_silent_registry_is_one_line(tmp_path, silent_port, monkeypatch):
    monkeypatch.setattr("hypercontainer_plugins.images.registry.TIMEOUT", (2, 0.3))
    images = OciImages(Config(state_root=tmp_path / "state"))
    with pytest.raises(UserError) as error:
        images.login(f"127.0.0.1:{silent_port}", "u", "p")
    assert str(error.value) == (
        f"cannot reach registry 127.0.0.1:{silent_port}: no answer within 0.3 s"
    )

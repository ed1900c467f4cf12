"""files[].uri over http(s), fetched by hyperctl: against a real server on loopback."""

from __future__ import annotations

import json
import socket

import pytest
from hypercontainer.errors import UserError
from hypercontainer.fetch import Fetcher
from hypercontainer.specload import load_pod_file

from tests.support.registry import make_certificate
from tests.support.webserver import WebServer

LOGO = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


def test_a_pod_file_uri_is_fetched_and_inlined(tmp_path):
    with WebServer({"/test/logo.png": LOGO}) as web:
        pod = tmp_path / "pod.json"
        pod.write_text(
            json.dumps(
                {
                    "files": [{"name": "logo", "uri": web.url("/test/logo.png")}],
                    "containers": [
                        {"image": "busybox", "files": [{"filename": "logo", "path": "/x/"}]}
                    ],
                }
            )
        )
        spec = load_pod_file(pod, fetch=Fetcher())
    assert spec.files[0].data == LOGO and spec.files[0].uri == ""
    assert spec.containers[0].files[0].destination == "/x/logo"
    assert web.requests == ["/test/logo.png"]


def test_failures_in_the_users_terms():
    with WebServer(
        {"/big": b"x" * 101, "/away": "file:///etc/passwd", "/ftp": "ftp://127.0.0.1/x"}
    ) as web:
        with pytest.raises(UserError, match=r"/gone: the server answered HTTP 404 Not Found$"):
            Fetcher()(web.url("/gone"))
        with pytest.raises(UserError, match="/big: it is larger than 100 bytes$"):
            Fetcher(max_bytes=100)(web.url("/big"))
        with pytest.raises(UserError, match=r"redirected to file:///etc/passwd, which is not"):
            Fetcher()(web.url("/away"))
        with pytest.raises(UserError, match=r"redirected to ftp://127.0.0.1/x, which is not"):
            Fetcher()(web.url("/ftp"))
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(
        UserError, match=f"cannot fetch http://127.0.0.1:{port}/x: connection refused$"
    ):
        Fetcher()(f"http://127.0.0.1:{port}/x")


def test_through_the_configured_proxy():
    with WebServer({"/file": b"from the proxy"}) as proxy:
        fetched = Fetcher(proxy=proxy.url(""))("http://files.invalid/file")
    assert fetched == b"from the proxy"
    assert proxy.requests == ["http://files.invalid/file"]  # asked as a proxy is


def test_https_trusts_the_configured_ca(tmp_path):
    cert, key = make_certificate(tmp_path / "tls", "127.0.0.1")
    with WebServer({"/conf": b"secret conf"}, tls=(cert, key)) as web:
        with pytest.raises(UserError, match="its TLS certificate is not trusted"):
            Fetcher()(web.url("/conf"))
        assert Fetcher(ca_file=str(cert))(web.url("/conf")) == b"secret conf"

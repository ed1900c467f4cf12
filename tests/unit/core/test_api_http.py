"""hyperd's HTTP server (core/api/http.py): a failure after a stream's headers went out
ends that stream, never writing a second HTTP answer into it; query numbers are
taken only when they are numbers."""

from __future__ import annotations

import errno
import socket
import sqlite3
import threading
from collections.abc import Iterator

import pytest
from hypercontainer.api.http import Router, UnixHTTPServer
from hypercontainer.errors import UserError


@pytest.fixture
def server(tmp_path) -> Iterator[str]:
    router = Router()

    @router.add("GET", "/lines/{what}", "two lines, then a failure", kind="lines")
    def lines(request) -> Iterator[dict]:
        yield {"n": 1}
        if request.params["what"] == "bug":
            raise RuntimeError("boom")
        raise UserError("gone away")

    @router.add("GET", "/full/{how}", "a full disk no store said")
    def full(request) -> dict:
        if request.params["how"] == "file":
            raise OSError(errno.ENOSPC, "No space left on device", "/s/pods/p/share")
        db = sqlite3.connect(":memory:")  # a database that may not grow: SQLITE_FULL
        db.execute("CREATE TABLE t (x)")
        db.execute(f"PRAGMA max_page_count={db.execute('PRAGMA page_count').fetchone()[0]}")
        db.execute("INSERT INTO t VALUES (?)", (b"x" * 100_000,))
        return {}

    @router.add("GET", "/raw", "a chunk, then a bug", kind="raw")
    def raw(request) -> Iterator[bytes]:
        yield b"chunk"
        raise RuntimeError("boom")

    @router.add("POST", "/wait", "a number of seconds from the query")
    def wait(request) -> dict:
        return {"t": request.number("t", 10.0)}

    path = str(tmp_path / "s.sock")
    http = UnixHTTPServer(path, router)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield path
    http.shutdown()
    http.server_close()


def get(path: str, target: str, method: str = "GET") -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(path)
        sock.sendall(
            f"{method} {target} HTTP/1.1\r\nHost: hyperd\r\n"
            "Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
        )
        answer = b""
        while data := sock.recv(65536):
            answer += data
        return answer


@pytest.mark.parametrize("what, error", [("bug", b"internal error: boom"), ("user", b"gone away")])
def test_a_line_stream_that_fails_says_so_in_its_last_line(server, what, error) -> None:
    answer = get(server, f"/lines/{what}")
    assert answer.count(b"HTTP/1.") == 1
    body = answer.split(b"\r\n\r\n", 1)[1]
    assert body == b'{"n": 1}\n{"error": "' + error + b'"}\n'


def test_a_raw_stream_that_fails_is_cut_after_what_it_sent(server) -> None:
    answer = get(server, "/raw")
    assert answer.count(b"HTTP/1.") == 1
    assert answer.split(b"\r\n\r\n", 1)[1] == b"chunk"


@pytest.mark.parametrize(
    "query, status, body",
    [
        ("", b"200", b'{"t": 10.0}'),
        ("?t=2.5", b"200", b'{"t": 2.5}'),
        ("?t=", b"400", b"query parameter t: '' is not a number from 0 to 1e+09"),
        ("?t=nan", b"400", b"query parameter t: 'nan' is not a number"),
    ],
)
def test_query_numbers_absent_given_or_refused(server, query, status, body) -> None:
    answer = get(server, f"/wait{query}", method="POST")
    assert answer.split(b" ")[1] == status
    assert body in answer.split(b"\r\n\r\n", 1)[1]


@pytest.mark.parametrize(
    "how, error",
    [
        ("file", b'{"error": "no space left on device (/s/pods/p/share)"}'),
        ("sqlite", b'{"error": "no space left on device"}'),
    ],
)
def test_a_full_disk_no_store_said_is_no_internal_error(server, how, error) -> None:
    answer = get(server, f"/full/{how}")
    assert answer.startswith(b"HTTP/1.1 507 ") and answer.endswith(error), answer

"""hyperd's API without booting anything: the OpenAPI document, errors, refusals."""

import json
import socket
import stat

import pytest
from hypercontainer.cli.client import Client, CommandError

from tests.support.daemon import Hyperd, busybox_hyperd, rows


@pytest.fixture(scope="module")
def daemon():
    with busybox_hyperd() as hyperd:
        yield hyperd


def raw(daemon, request: bytes) -> tuple[int, dict]:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(daemon.socket))
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = [
                int(h.split(b":")[1])
                for h in head.split(b"\r\n")
                if h.lower().startswith(b"content-length")
            ]
            if length and len(body) >= length[0]:
                break
    status = int(data.split(b" ", 2)[1])
    return status, json.loads(data.partition(b"\r\n\r\n")[2] or b"null")


def test_the_socket_is_private(daemon):
    assert stat.S_IMODE(daemon.socket.stat().st_mode) == 0o600
    assert stat.S_IMODE(daemon.state_root.stat().st_mode) == 0o700


def test_openapi_document_lists_every_route(daemon):
    document = daemon.api("GET", "/openapi.json")
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    assert {"get", "post"} <= set(paths["/pods"])
    assert "post" in paths["/containers/{ref}/exec"]
    schema = paths["/pods"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert schema["$ref"] == "#/components/schemas/CreatePod"
    assert "PodView" in document["components"]["schemas"]


def http(method: str, path: str, body: bytes | None = None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\n"
    if body is not None:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + (body or b"")


@pytest.mark.parametrize(
    "request_bytes, status, message",
    [
        (http("GET", "/nothing"), 404, "no API endpoint /nothing"),
        (http("PUT", "/pods", b""), 405, "PUT is not allowed on /pods"),
        (http("GET", "/pods/nope"), 404, "no such pod: nope"),
        (
            http("POST", "/pods", b"{bad}"),
            400,
            "invalid JSON: key must be a string at line 1 column 2",
        ),
        (http("POST", "/pods", b'{"spec": {"containers": []}, "x": 1}'), 400, "x: unknown field"),
        (
            http("POST", "/pods", b'{"spec": {"containers": [{}]}}'),
            400,
            "containers[0].image: field required",
        ),
        (http("POST", "/containers/nope/kill?signal=SIGNOPE"), 404, "no such container: nope"),
    ],
)
def test_errors_are_one_line_with_the_right_status(daemon, request_bytes, status, message):
    got, body = raw(daemon, request_bytes)
    assert (got, body["error"]) == (status, message)


def test_a_failed_run_leaves_nothing(daemon):
    missing = daemon.hyperctl("run", "-d", "localhost:1/nothing-here:1")
    assert missing.returncode == 1
    assert missing.stderr.count("\n") == 1 and missing.stderr.startswith("hyperctl ERROR: ")
    volume = daemon.hyperctl("run", "-d", "-v", "/no/such/dir:/data", "busybox")
    assert volume.returncode == 1
    assert (
        "volume volume0: /no/such/dir is neither a directory nor a file on the host"
        in volume.stderr
    )
    assert rows(daemon.hyperctl("list").stdout) == []
    assert rows(daemon.hyperctl("list", "container").stdout) == []


def test_illegal_transitions_are_refused(daemon, tmp_path):
    podfile = tmp_path / "p.json"
    podfile.write_text('{"id": "idle", "containers": [{"image": "busybox"}]}')
    assert daemon.hyperctl("create", "-p", str(podfile)).stdout == "POD id is idle\n"
    stop = daemon.hyperctl("stop", "idle")
    assert stop.returncode == 1 and "pod idle is not running (it is pending)" in stop.stderr
    start_c = daemon.hyperctl("start", "-c", "idle")
    assert start_c.returncode == 1 and "start the pod first" in start_c.stderr
    client = Client(str(daemon.config_file), autostart=False)
    with pytest.raises(CommandError, match="already exists"):
        client.request("POST", "/pods", {"spec": {"id": "idle", "containers": []}})
    assert daemon.hyperctl("rm", "idle").stdout == "Pod(idle) is successfully deleted!\n"


def test_images_verbs(daemon, tmp_path):
    listing = daemon.hyperctl("images", check=True).stdout
    assert listing.splitlines()[0].split() == [
        "REPOSITORY",
        "TAG",
        "IMAGE",
        "ID",
        "CREATED",
        "VIRTUAL",
        "SIZE",
    ]
    assert rows(listing)[0][:2] == ["busybox", "latest"]
    image_id = daemon.hyperctl("images", "-q", check=True).stdout.strip()
    assert len(image_id) == 12
    archive = tmp_path / "saved.tar"
    daemon.hyperctl("save", "-o", str(archive), "busybox", check=True)
    assert archive.stat().st_size > 500_000
    daemon.hyperctl("rmi", "busybox", check=True)
    assert daemon.hyperctl("images", "-q").stdout.strip() == ""
    loaded = daemon.hyperctl("load", "-i", str(archive), check=True).stdout
    assert loaded == "Loaded image: docker.io/library/busybox:latest\n"
    assert daemon.hyperctl("images", "-q").stdout.strip() == image_id


def test_hyperctl_list_does_not_import_the_daemon(daemon):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "hypercontainer.cli.main", "list"],
        env=daemon.env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.startswith("POD ID")
    imported = {
        line.split("|")[-1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    heavy = {
        name
        for name in imported
        if name.split(".")[0]
        in ("pydantic", "structlog", "stevedore", "pluggy", "requests", "yaml")
    }
    heavy |= {
        name
        for name in imported
        if name.startswith(("hypercontainer.runtime", "hypercontainer.api", "hypercontainer.spec"))
    }
    assert heavy == set()


def test_rmi_refuses_an_image_a_container_uses(daemon, tmp_path):
    podfile = tmp_path / "user.json"
    podfile.write_text('{"id": "user-of-busybox", "containers": [{"image": "busybox"}]}')
    daemon.hyperctl("create", "-p", str(podfile), check=True)
    refused = daemon.hyperctl("rmi", "busybox")
    assert refused.returncode == 1 and "hyperctl ERROR: " in refused.stderr
    assert rows(daemon.hyperctl("images").stdout)[0][:2] == ["busybox", "latest"]
    daemon.hyperctl("rm", "user-of-busybox", check=True)
    daemon.hyperctl("rmi", "busybox", check=True)
    assert daemon.hyperctl("images", "-q").stdout.strip() == ""
    daemon.load_busybox()


def test_hyperctl_starts_a_daemon_when_none_listens():
    fresh = Hyperd()  # configured, not started
    try:
        first = fresh.hyperctl("list", check=True)
        assert first.stderr.startswith("hyperd is not running; starting it (log: ")
        assert first.stdout.startswith("POD ID")
        second = fresh.hyperctl("list", check=True)
        assert second.stderr == ""  # the daemon it started is still there
    finally:
        import os
        import signal

        lock = fresh.run_root / "hyperd.lock"
        if lock.exists() and lock.read_text().strip():
            os.kill(int(lock.read_text()), signal.SIGTERM)
        fresh.cleanup()

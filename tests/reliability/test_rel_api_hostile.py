"""Every API route of a real hyperd under hostile requests.

Each request is either accepted or refused with 400/404/405/409 and a one-line
`{"error": ...}` body: never a 500, never a hang, never a traceback. A refusal
changes nothing: the pod, container, image and port lists, the files under
the state and run roots, and the set of QEMU processes are compared before
and after. An accepted request is undone, and the world must then be what it
was. One VM runs for the whole module (the `target` pod); everything else is
refused before anything boots.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypercontainer_plugins.images.build import Image, Layer
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.reliability import hostile
from tests.reliability.rawhttp import (
    Answer,
    HungUpEarly,
    finish_stream,
    request_bytes,
    send,
    target,
)
from tests.reliability.support import finish, tree
from tests.support.daemon import Hyperd, qemu_pids
from tests.support.imagebuild import busybox_base, write_archive

pytestmark = pytest.mark.vm

REFUSED = {400, 404, 405, 409}
# Requests per property; HC_TEST_EXAMPLES=N looks N times harder. See docs/reliability.md.
HARDER = int(os.environ.get("HC_TEST_EXAMPLES", 1))
ROUTE_EXAMPLES, HTTP_EXAMPLES = 300 * HARDER, 150 * HARDER


def examples(count: int) -> settings:
    return settings(
        max_examples=count,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
        ],
    )


QUIET = ["sh", "-c", "trap '' TERM INT HUP USR1 USR2 QUIT; sleep 1000000 & wait; sleep 1000000"]
ROUTES = {repr(case): case for case in hostile.ROUTES}
KIND_PATH = {"pod": "/pods/{}", "container": "/containers/{}", "image": "/images/{}"}


class World:
    """The daemon under test, the objects it holds, and what must not change."""

    def __init__(self, daemon: Hyperd) -> None:
        self.daemon = daemon

    def send(self, method: str, path: str, body: bytes = b"", headers=None) -> Answer:
        return send(self.daemon.socket, request_bytes(method, path, body, headers), timeout=30)

    def get(self, path: str) -> Any:
        answer = self.send("GET", path)
        assert answer.status == 200, (path, answer)
        return answer.json()

    def resolves(self, kind: str, ref: str) -> bool:
        path = KIND_PATH[kind].format(quote(ref, safe=""))
        return self.send("GET", path).status == 200

    def snapshot(self) -> dict[str, Any]:
        def mutable(path: Path) -> bool:
            # The database and the guest's console change on their own; the images
            # store's scratch directory comes and goes (what is left in it is not skipped).
            relative = path.relative_to(self.daemon.state_root)
            # The images index is compared by what `GET /images` lists instead (a tag
            # added and removed again is no change).
            return (
                path.name.startswith(("state.db", "index.db"))
                or path.name == "console.log"
                or relative == Path("images/tmp")
            )

        return {
            "pods": self.get("/pods"),
            "containers": self.get("/containers"),
            "images": self.get("/images"),
            "ports": self.get("/pods/target/ports"),
            "state": tree(self.daemon.state_root, mutable),
            "run": sorted(tree(self.daemon.run_root)),
            "qemu": qemu_pids(self.daemon.run_root),
        }

    def restore(self, baseline: dict[str, Any]) -> None:
        """Undo what an accepted request added: pods, containers, port forwards."""
        pods = {p["id"] for p in baseline["pods"]}
        containers = {c["id"] for c in baseline["containers"]}
        for pod in self.get("/pods"):
            if pod["id"] not in pods:
                assert self.send("DELETE", f"/pods/{pod['id']}").status == 200
        for container in self.get("/containers"):
            if container["id"] not in containers:
                assert self.send("DELETE", f"/containers/{container['id']}").status == 200
        self._restore_tags(baseline["images"])
        for forward in self.get("/pods/target/ports"):
            if forward not in baseline["ports"]:
                body = {
                    "mappings": [
                        {
                            "protocol": forward["protocol"],
                            "host_ip": forward["host_ip"],
                            "host_port": forward["host_port"],
                            "container_port": forward["guest_port"],
                        }
                    ]
                }
                answer = self.send("POST", "/pods/target/ports/delete", json.dumps(body).encode())
                assert answer.status == 200, answer

    def _restore_tags(self, baseline: list[dict[str, Any]]) -> None:
        """Give moved tags back to their images, then drop the tags that were added."""

        def name(row: dict[str, Any]) -> str:
            return f"{row['repository']}:{row['tag']}"

        for row in baseline:
            if row not in self.get("/images"):
                body = json.dumps({"source": row["id"], "target": name(row)}).encode()
                assert self.send("POST", "/images/tag", body).status == 200
        for row in self.get("/images"):
            if row not in baseline:
                assert self.send("DELETE", f"/images/{quote(name(row), safe='')}").status == 200


def escape_image(path: Path) -> Path:
    """busybox plus `hop`, a symbolic link that climbs far above the root to /etc."""
    image = Image(
        [busybox_base(), Layer().symlink("hop", "../../../../../../../../etc")], cmd=["sh"]
    )
    return write_archive(path, {"docker.io/library/escape:latest": image.build()})


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    daemon = Hyperd().start()
    try:
        work = tmp_path_factory.mktemp("api")
        daemon.load_busybox()
        daemon.hyperctl("load", "-i", str(escape_image(work / "escape.tar")), check=True)
        target_pod = {
            "id": "target",
            "files": [{"name": "marker", "content": "contained\n"}],
            "containers": [
                {
                    "name": "target",
                    "image": "escape",
                    "command": QUIET,
                    "files": [{"filename": "marker", "path": "/hop/marker"}],
                }
            ],
        }
        idle_pod = {"id": "idle", "containers": [{"name": "idle", "image": "busybox"}]}
        for name, pod in (("target", target_pod), ("idle", idle_pod)):
            (work / f"{name}.json").write_text(json.dumps(pod))
        daemon.hyperctl("run", "-d", "-p", str(work / "target.json"), check=True)
        daemon.hyperctl("create", "-p", str(work / "idle.json"), check=True)
        yield World(daemon)
    finally:
        finish(daemon)


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What differs between two snapshots, briefly."""
    found = []
    for key in before:
        old, new = before[key], after[key]
        if old == new:
            continue
        if isinstance(old, dict):
            found += [
                f"{key}: {name} {old.get(name)} -> {new.get(name)}"
                for name in sorted(set(old) | set(new))
                if old.get(name) != new.get(name)
            ]
        else:
            found.append(f"{key}: {old} -> {new}")
    return found


def check_answer(answer: Answer) -> bool:
    """The answer is well-formed; True if the request was refused."""
    assert answer.status in {200, 101} | REFUSED, answer
    if answer.status in REFUSED:
        assert answer.headers.get("content-type") == "application/json", answer
        error = answer.json()
        assert list(error) == ["error"], answer
        assert isinstance(error["error"], str) and error["error"].strip(), answer
        assert "\n" not in error["error"] and "Traceback" not in error["error"], answer
        return True
    if answer.headers.get("content-type") == "application/x-ndjson":
        lines = answer.lines()
        errors = [line["error"] for line in lines if "error" in line]
        assert all("\n" not in e and e.strip() for e in errors), answer
        return bool(errors)
    if answer.status == 101:
        finish_stream(answer)
    return False


def test_every_route_has_a_hostile_strategy(world):
    documented = {
        (method.upper(), path)
        for path, operations in world.get("/openapi.json")["paths"].items()
        for method in operations
    }
    assert documented == {(case.method, case.template) for case in hostile.ROUTES}


@examples(ROUTE_EXAMPLES)
@given(data=st.data())
def test_hostile_requests_are_accepted_or_refused_in_one_line(world, data):
    case = ROUTES[data.draw(st.sampled_from(sorted(ROUTES)), label="route")]
    ref = None
    query = data.draw(case.query, label="query")
    must_refuse = False
    if "{ref}" in case.template:
        real = {
            "pod": hostile.REAL_PODS,
            "container": hostile.REAL_CONTAINERS,
            "image": hostile.REAL_IMAGES,
        }[case.kind]
        ref = data.draw(hostile.refs(real), label="ref")
        if case.destructive and world.resolves(case.kind, ref):
            assume(case.refuse_args is not None)
            query = data.draw(case.refuse_args, label="arguments that must be refused")
            must_refuse = True
    body = b""
    if case.body is not None:
        body = hostile.encode_body(data.draw(case.body, label="body"), data.draw)
    path = target(hostile.path_of(case, ref), hostile.query_text(query))

    before = world.snapshot()
    answer = world.send(case.method, path, body)
    refused = check_answer(answer)
    assert refused or not must_refuse, f"{case.method} {path} should have been refused: {answer}"
    if refused:
        assert not changes(before, world.snapshot()), f"{case.method} {path}: refused, yet"
    else:
        world.restore(before)
        assert not changes(before, world.snapshot()), f"{case.method} {path}: undone, yet"


# Found by the property above or by hand; each hung the daemon, answered 500 or wrote a
# second answer into a stream before it was fixed; the pod files name a host path
# somewhere else than a volume's source.
SPEC = b'{"spec": {}}'
KNOWN = [
    ("POST", "/pods/target/stop?t=nan", {}, b""),  # hung for ever, holding the pod's lock
    ("POST", "/pods/target/stop?t=inf", {}, b""),
    ("POST", "/pods/target/stop?t=", {}, b""),  # taken as "no t": stopped the pod
    ("POST", "/containers/target/stop?t=1e308", {}, b""),
    ("POST", "/containers/target/wait?timeout=nan", {}, b""),  # hung
    ("POST", "/containers/target/wait?timeout=inf", {}, b""),  # 500
    ("POST", "/containers/target/wait?timeout=-1", {}, b""),
    ("GET", "/containers/target/logs?tail=nan", {}, b""),  # 500
    ("GET", "/containers/target/logs?tail=1e30", {}, b""),  # a 500 inside a 200 stream
    ("POST", "/containers/target/kill?signal=99999", {}, b""),  # 500 from the guest agent
    ("POST", "/containers/target/kill?signal=0", {}, b""),
    ("POST", "/containers/target/kill?signal=%C2%B2", {}, b""),  # "²" is a digit to isdigit()
    ("POST", "/pods", {"Content-Length": "abc"}, SPEC),  # 500
    ("POST", "/pods", {"Content-Length": "-1"}, SPEC),  # read to the connection's end: hung
    ("POST", "/images/load", {"Content-Length": "abc"}, SPEC),  # 500
    ("POST", "/images/load", {"Content-Length": "-1"}, SPEC),
    *(
        ("POST", "/pods", {}, json.dumps({"spec": spec}).encode())
        for spec in (
            {
                "files": [{"name": "f", "uri": "file:///etc/shadow"}],
                "containers": [{"image": "busybox", "files": [{"filename": "f", "path": "/f"}]}],
            },
            {"containers": [{"image": "/etc/passwd"}]},
            {"containers": [{"image": "busybox", "logPath": "/etc/cron.d/x"}]},
            {"containers": [{"image": "busybox", "workdir": "../../etc"}]},
            {
                "containers": [{"image": "busybox", "volumes": [{"volume": "v", "path": "/v"}]}],
                "volumes": [{"name": "v", "source": "../../etc"}],
            },
            {"containers": [{"image": "busybox"}], "interfaces": [{"bridge": "docker0"}]},
            {"containers": [{"image": "busybox"}], "interfaces": [{"tap": "eth0"}]},
        )
    ),
]


@pytest.mark.parametrize(("method", "path", "headers", "body"), KNOWN)
def test_known_hostile_requests_are_refused(world, method, path, headers, body):
    before = world.snapshot()
    answer = send(world.daemon.socket, request_bytes(method, path, body, headers), timeout=20)
    assert check_answer(answer), answer
    assert answer.status == 400, answer
    assert not changes(before, world.snapshot())


def test_a_volume_source_is_the_one_place_for_a_host_path(world, tmp_path):
    """The same pod file with the host directory as a volume's source is accepted."""
    spec = {
        "id": "shares",
        "volumes": [{"name": "v", "source": str(tmp_path)}],
        "containers": [{"image": "busybox", "volumes": [{"volume": "v", "path": "/v"}]}],
    }
    before = world.snapshot()
    answer = world.send("POST", "/pods", json.dumps({"spec": spec}).encode())
    assert answer.status == 200, answer
    world.restore(before)
    assert not changes(before, world.snapshot())


PROTOCOL_ERRORS = {400, 404, 405, 409, 411, 413, 414, 431, 501, 505}
methods = st.one_of(
    st.sampled_from(
        ["GET", "POST", "PUT", "PATCH", "HEAD", "OPTIONS", "get", "G T", "CONNECT", "X" * 300]
    ),
    hostile.text,
)
targets = st.one_of(
    st.sampled_from(
        [
            "/pods",
            "/version",
            "*",
            "http://hyperd/pods",
            "//pods",
            "/pods/",
            "/pods?%%%",
            "/%",
            "/images/load",
            "/pods/idle/containers",
            "/containers/target/exec",
            "/../../etc/passwd",
            "/containers/target/logs?tail=2",
            "/" + "a" * 70000,
        ]
    ),
    hostile.text,
)
versions = st.sampled_from(
    [
        "HTTP/1.1",
        "HTTP/1.0",
        "HTTP/2.0",
        "HTTP/0.9",
        "HTTP/1.1 x",
        "",
        "HTTP/1.10",
        "FOO/1.1",
        "HTTP/1.1\x00",
    ]
)
header_sets = st.dictionaries(
    st.one_of(
        st.sampled_from(
            [
                "Content-Length",
                "Transfer-Encoding",
                "Expect",
                "Connection",
                "Upgrade",
                "Content-Type",
                "Host",
                "X" * 70000,
            ]
        ),
        hostile.text,
    ),
    st.one_of(
        hostile.number_text(),
        st.sampled_from(
            ["chunked", "100-continue", "Upgrade", "hc-stream", "close", "gzip, chunked"]
        ),
    ),
    max_size=4,
).map(lambda headers: {k: v for k, v in headers.items() if "\n" not in k + v and "\r" not in k + v})


@examples(HTTP_EXAMPLES)
@given(
    method=methods,
    path=targets,
    version=versions,
    headers=header_sets,
    body=st.binary(max_size=512),
    many=st.booleans(),
)
def test_malformed_http_is_refused_in_one_line(world, method, path, version, headers, body, many):
    head = f"{method} {path} {version}".rstrip() + "\r\n"
    if many:
        headers = {**headers, **{f"X-{i}": "y" for i in range(120)}}
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    raw = head.encode("utf-8", "surrogateescape") + b"\r\n" + body

    before = world.snapshot()
    try:
        answer = send(world.daemon.socket, raw, timeout=20)
    except (HungUpEarly, ConnectionResetError):
        # http.server stops reading at its limits (a line over 64 KiB, over 100 headers) and
        # hangs up with our bytes unread: the kernel may then drop its answer for a reset.
        lines = raw.split(b"\r\n")
        assert len(lines) > 100 or max(map(len, lines)) > 65536, "hung up without a cause"
        assert not changes(before, world.snapshot())
        return
    except ConnectionError:
        # http.server reads the request line up to "\n" and hangs up if it is blank.
        assert not head.split("\n")[0].strip(), "hyperd hung up without answering"
        return
    if answer.status == 0:  # an HTTP/0.9 answer: a bare body
        error = json.loads(answer.body)
        assert list(error) == ["error"] and "\n" not in error["error"], answer
        refused = True
    elif answer.status in PROTOCOL_ERRORS - REFUSED:
        assert list(answer.json()) == ["error"] and "\n" not in answer.json()["error"], answer
        refused = True
    else:
        refused = check_answer(answer)
    if refused:
        assert not changes(before, world.snapshot()), f"{method} {path}: refused, yet"
    else:
        world.restore(before)
        assert not changes(before, world.snapshot()), f"{method} {path}: undone, yet"


def test_files_land_inside_the_container_even_through_a_climbing_link(world):
    """`files` went to /hop/marker, and hop -> ../../../../etc: inside the container, /etc."""
    out = world.daemon.hyperctl("exec", "target", "cat", "/etc/marker", check=True).stdout
    assert out == "contained\n"
    assert not Path("/etc/marker").exists()

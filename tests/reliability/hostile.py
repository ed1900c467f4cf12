"""Hypothesis strategies for hostile API requests: paths, query strings, bodies, raw HTTP.

Each route of hyperd gets its own strategy (`ROUTES`), shaped like what the
route expects but wrong in every way hypothesis can think of; the references
it names mix real objects (`REAL`), near misses and junk. Destructive
requests are only ever sent with arguments that must be refused: the test
checks the refusal, and a daemon that accepted one would fail it anyway.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from hypothesis import strategies as st

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "hyperd-examples"
EXAMPLE_PODS = sorted(p for p in EXAMPLES.glob("*.pod"))

# The objects the test world holds (see test_rel_api_hostile.World).
REAL_PODS = ("target", "idle")
REAL_CONTAINERS = ("target", "idle")
REAL_IMAGES = ("busybox", "escape", "busybox:latest")
REAL = REAL_PODS + REAL_CONTAINERS + REAL_IMAGES

WORDS = [
    "id", "name", "containers", "image", "command", "volumes", "source", "path", "files",
    "filename", "content", "encoding", "portmappings", "hostPort", "containerPort", "resource",
    "memory", "vcpu", "labels", "spec", "start", "stdin_open", "protocol", "host_ip",
    "host_port", "container_port", "tty", "env", "reference", "references", "registry",
    "username", "password", "busybox", "escape", "tcp", "udp", "/", "/tmp", "..", "../..",
    "/etc/passwd", "true", "false", "null", "0", "-1", "65536", "1e400", "NaN",
]  # fmt: skip

ODD_TEXT = [
    "", " ", "..", "../..", "../../etc/passwd", "/etc/shadow", "%", "_", "%25", "\\", "\x00",
    "\n", "\r\n", "a" * 5000, "\u202e", "\ud7ff", "ÿ", "²", "٣", "ﬀ", "nan", "inf", "-inf",
    "1e308", "-0", "0x10", "9" * 40, "*", "?", "#", ";", "'", '"', "${HOME}", "$(id)",
]  # fmt: skip

text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(ODD_TEXT),
    st.sampled_from(WORDS),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
json_like = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(WORDS), st.text(max_size=8)), children, max_size=5
        ),
    ),
    max_leaves=30,
)
NOT_TRUE = st.sampled_from([False, 0, "no", "off", None, 2, -1, "maybe", [], {}, "", 0.5])


def number_text() -> st.SearchStrategy[str]:
    """Query values that look more or less like numbers."""
    return st.one_of(
        st.sampled_from(
            [
                "nan",
                "NaN",
                "inf",
                "-inf",
                "Infinity",
                "1e308",
                "1e309",
                "-1",
                "-0.5",
                "1e-400",
                "9" * 400,
                "0x1",
                "1_000",
                " 5",
                "5 ",
                "",
                "²",
                "٣",
                "1e10",
            ]
        ),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.integers(min_value=-(2**80), max_value=2**80).map(str),
        text,
    )


def plausible_number(value: str, maximum: float) -> bool:
    """Whether `value` is a number a user may give for seconds or a count: finite, 0..maximum."""
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return False
    return 0 <= number <= maximum


def refs(real: tuple[str, ...]) -> st.SearchStrategy[str]:
    """References: real names, near misses (prefixes, case, padding) and junk."""
    near = st.sampled_from(real).flatmap(
        lambda name: st.sampled_from(
            [
                name.upper(),
                name[:1],
                name + "x",
                " " + name,
                name + "/",
                name + "%",
                "_" + name[1:],
                name + "\x00",
                f"{name}/../{name}",
                name.swapcase(),
            ]
        )
    )
    return st.one_of(st.sampled_from(real), near, text.filter(bool))


def shaped(fields: dict[str, st.SearchStrategy]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts with some of a model's keys (with plausible or junk values), sometimes extra keys."""
    values = {key: st.one_of(strategy, json_like) for key, strategy in fields.items()}
    return st.fixed_dictionaries({}, optional=values).flatmap(
        lambda body: st.dictionaries(st.text(max_size=8), json_like, max_size=2).map(
            lambda extra: {**extra, **body}
        )
    )


def example_pod() -> st.SearchStrategy[dict[str, Any]]:
    """The original project's example pod files, images swapped for local ones at times."""

    def load(path: Path, local: bool) -> dict[str, Any]:
        pod = json.loads(path.read_text())
        pod.pop("id", None)  # names are drawn, so that a pod the test creates is findable
        if local:
            for container in pod.get("containers", []):
                container["image"] = "busybox"
        return pod

    return st.builds(load, st.sampled_from(EXAMPLE_PODS), st.booleans())


def mutated(pod: dict[str, Any], data: Any) -> dict[str, Any]:
    """`pod` with up to three values (anywhere in it) replaced by junk."""
    for _ in range(data.draw(st.integers(min_value=0, max_value=3))):
        paths = list(_paths(pod))
        where = data.draw(st.sampled_from(paths))
        pod = _replaced(pod, where, data.draw(json_like))
    return pod


def _paths(data: Any, prefix: tuple = ()):
    yield prefix
    items = (
        data.items()
        if isinstance(data, dict)
        else enumerate(data)
        if isinstance(data, list)
        else ()
    )
    for key, value in items:
        yield from _paths(value, (*prefix, key))


def _replaced(data: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    copy = dict(data) if isinstance(data, dict) else list(data)
    copy[path[0]] = _replaced(data[path[0]], path[1:], value)
    return copy


@st.composite
def pod_spec(draw) -> dict[str, Any]:
    base = draw(
        st.one_of(
            example_pod(),
            st.fixed_dictionaries({"containers": st.just([{"image": "busybox"}])}),
            json_like,
        )
    )
    spec = mutated(base, draw(st.data())) if draw(st.booleans()) else base
    if isinstance(spec, dict) and draw(st.booleans()):
        spec = {**spec, "id": draw(refs(REAL_PODS))}
    return spec


container_spec = st.one_of(
    shaped(
        {
            "image": st.sampled_from(["busybox", "escape", "nosuch"]),
            "name": refs(REAL_CONTAINERS),
            "command": st.lists(text, max_size=3),
            "workdir": text,
            "files": json_like,
            "volumes": json_like,
        }
    ),
    json_like,
)


@dataclass(repr=False)
class Case:
    """One route, and how to make hostile requests for it."""

    method: str
    template: str
    body: st.SearchStrategy[Any] | None = None
    query: st.SearchStrategy[dict[str, str]] = field(default_factory=lambda: st.just({}))
    # Whether the request may change or destroy what it names if the arguments are valid:
    # such requests are only sent with a reference to nothing, or with arguments the
    # daemon must refuse (`refuse_args`).
    destructive: bool = False
    refuse_args: st.SearchStrategy[dict[str, str]] | None = None
    kind: str = "pod"  # what {ref} names: pod, container, image

    def __repr__(self) -> str:
        return f"{self.method} {self.template}"


def queries(**fields: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, str]]:
    junk = st.dictionaries(text, text, max_size=2)
    return st.fixed_dictionaries({}, optional=fields).flatmap(
        lambda chosen: junk.map(lambda extra: {**extra, **chosen})
    )


def _bad_seconds(name: str) -> st.SearchStrategy[dict[str, str]]:
    return number_text().filter(lambda v: not plausible_number(v, 1e9)).map(lambda v: {name: v})


def _bad_signal() -> st.SearchStrategy[dict[str, str]]:
    import signal

    known = {s.name for s in signal.Signals} | {s.name[3:] for s in signal.Signals}

    def harmless(value: str) -> bool:  # would a kill with it be valid? then it is not sent
        upper = value.upper()
        return upper in known or (value.isascii() and value.isdigit() and int(value) <= 64)

    return (
        st.one_of(number_text(), text)
        .filter(lambda v: v and not harmless(v))
        .map(lambda v: {"signal": v})
    )


PORT_MAPPING = shaped(
    {
        "protocol": st.sampled_from(["tcp", "udp", "sctp", "TCP"]),
        "host_ip": st.sampled_from(["", "127.0.0.1", "::1", "999.1.1.1", "x"]),
        "host_port": st.integers(-5, 70000),
        "container_port": st.integers(-5, 70000),
    }
)
PORT_BODY = shaped({"mappings": st.lists(PORT_MAPPING, max_size=3)})
IMAGES_LIST = st.lists(st.one_of(st.sampled_from(REAL_IMAGES), text), max_size=3)

ROUTES: list[Case] = [
    Case("GET", "/version", query=queries()),
    Case("GET", "/info", query=queries()),
    Case("GET", "/openapi.json", query=queries()),
    Case("GET", "/pods", query=queries()),
    Case(
        "POST",
        "/pods",
        body=shaped({"spec": pod_spec(), "start": NOT_TRUE, "stdin_open": st.booleans()}),
    ),
    Case("GET", "/pods/{ref}"),
    Case("POST", "/pods/{ref}/start", destructive=True),
    Case("POST", "/pods/{ref}/stop", destructive=True, refuse_args=_bad_seconds("t")),
    Case("POST", "/pods/{ref}/pause", destructive=True),
    Case("POST", "/pods/{ref}/unpause", destructive=True),
    Case("DELETE", "/pods/{ref}", destructive=True),
    Case("GET", "/pods/{ref}/ports"),
    Case("POST", "/pods/{ref}/ports", body=PORT_BODY),
    Case("POST", "/pods/{ref}/ports/delete", body=PORT_BODY),
    Case("GET", "/containers", query=queries(pod=refs(REAL_PODS))),
    Case(
        "POST",
        "/pods/{ref}/containers",
        body=shaped({"spec": container_spec, "start": NOT_TRUE, "stdin_open": st.booleans()}),
    ),
    Case("GET", "/containers/{ref}", kind="container"),
    Case("GET", "/containers/{ref}/processes", kind="container"),
    # Never following: a followed event stream only ends when the client leaves.
    Case(
        "GET",
        "/events",
        query=queries(since=text, until=text).map(lambda query: {**query, "follow": "0"}),
    ),
    Case("POST", "/containers/{ref}/start", kind="container", destructive=True),
    Case(
        "POST",
        "/containers/{ref}/stop",
        kind="container",
        destructive=True,
        refuse_args=_bad_seconds("t"),
    ),
    Case(
        "POST",
        "/containers/{ref}/kill",
        kind="container",
        destructive=True,
        refuse_args=_bad_signal(),
    ),
    # Always with a timeout: waiting for the running container without one is waiting for ever.
    Case(
        "POST",
        "/containers/{ref}/wait",
        kind="container",
        query=queries().flatmap(
            lambda junk: (
                number_text()
                .filter(lambda v: v and (not plausible_number(v, 1e9) or plausible_number(v, 0.5)))
                .map(lambda v: {**junk, "timeout": v})
            )
        ),
    ),
    Case("DELETE", "/containers/{ref}", kind="container", destructive=True),
    Case(
        "GET",
        "/containers/{ref}/logs",
        kind="container",
        query=queries(tail=number_text(), follow=st.sampled_from(["0", "no", "", "false"])),
    ),
    Case("POST", "/containers/{ref}/attach", kind="container", destructive=True),
    Case(
        "POST",
        "/containers/{ref}/exec",
        kind="container",
        body=shaped(
            {
                "command": st.lists(text, max_size=3),
                "tty": json_like,
                "env": st.lists(text, max_size=3),
            }
        ),
    ),
    Case("GET", "/images", query=queries()),
    Case("GET", "/images/{ref}", kind="image"),
    Case(
        "POST",
        "/images/pull",
        body=shaped(
            {
                "reference": st.one_of(
                    text, st.sampled_from(["busybox", "localhost:1/x", "a/../b", "x" * 2000])
                )
            }
        ),
    ),
    Case(
        "DELETE", "/images/{ref}", kind="image", destructive=True, refuse_args=st.just({})
    ),  # in use by the world's containers: refused without force
    Case("POST", "/images/load", body=st.one_of(st.binary(max_size=2048), json_like)),
    Case("POST", "/images/save", body=shaped({"references": IMAGES_LIST})),
    Case(
        "POST",
        "/login",
        body=shaped(
            {
                "registry": st.sampled_from(
                    ["localhost:1", "127.0.0.1:1", "", "x" * 300, "/", "busybox"]
                ),
                "username": text,
                "password": text,
            }
        ),
    ),
    Case(
        "POST",
        "/logout",
        body=shaped(
            {
                "registry": st.sampled_from(
                    ["localhost:1", "127.0.0.1:1", "", "x" * 300, "/", "busybox", "https://a/v1/"]
                )
            }
        ),
    ),
    Case(
        "POST",
        "/images/tag",
        body=shaped(
            {
                "source": st.one_of(st.sampled_from(REAL_IMAGES), text),
                "target": st.one_of(
                    text,
                    st.sampled_from(
                        ["busybox", "escape", "x@sha256:" + "0" * 64, "127.0.0.1:1/a/b:c", "A/B"]
                    ),
                ),
            }
        ),
    ),
    # Destinations on loopback ports nobody serves: nothing may leave the machine.
    Case(
        "POST",
        "/images/push",
        body=shaped(
            {
                "reference": st.one_of(st.sampled_from(REAL_IMAGES), text),
                "destination": st.sampled_from(
                    ["127.0.0.1:1/x", "localhost:1/busybox:1", "127.0.0.1:1/a/../b", "x" * 2000]
                ),
            }
        ),
    ),
]


def encode_body(body: Any, draw: Callable) -> bytes:
    """The body as JSON, or now and then as something that is not JSON at all."""
    if isinstance(body, bytes):
        return body
    raw = json.dumps(body).encode()
    damage = draw(st.sampled_from(["none", "none", "none", "truncate", "latin1", "nul"]))
    if damage == "truncate":
        return raw[: len(raw) // 2]
    if damage == "latin1":
        return raw + b"\xff\xfe"
    if damage == "nul":
        return raw.replace(b":", b":\x00", 1)
    return raw


def path_of(case: Case, ref: str | None) -> str:
    return case.template.replace("{ref}", quote(ref, safe="")) if ref is not None else case.template


def query_text(values: dict[str, str]) -> str:
    return urlencode(values)

"""Properties over arbitrary input: a pod file either validates or is refused with
one line (UserError), never any other exception; key case never matters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypercontainer.errors import UserError
from hypercontainer.spec import PodSpec, normalised
from hypercontainer.specload import load_pod_spec, parse_pod_spec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.podfiles import ACCEPTED, EXAMPLES

# Words the pod format uses, so that generated data often hits real fields.
WORDS = [
    "id", "name", "hostname", "containers", "image", "command", "entrypoint", "workdir",
    "envs", "env", "value", "volumes", "volume", "path", "readOnly", "files", "filename",
    "perm", "user", "group", "tty", "restartPolicy", "labels", "stopSignal", "sysctl",
    "ulimits", "soft", "hard", "resource", "vcpu", "memory", "source", "format", "fstype",
    "encoding", "uri", "content", "portmappings", "containerPort", "hostPort", "protocol",
    "ports", "dns", "dnsSearch", "dnsOptions", "interfaces", "ip", "mac", "gateway",
    "services", "serviceIP", "servicePort", "hosts", "hostIP", "log", "type", "config",
    "busybox", "always", "never", "tcp", "udp", "vfs", "nas", "raw", "base64", "/", "/tmp",
    "80", "3000-3010", "0644", "SIGTERM", "max-size",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(WORDS),
)
keys = st.one_of(st.sampled_from(WORDS), st.text(max_size=10))
json_like = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(keys, children, max_size=5),
    ),
    max_leaves=40,
)
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parses_or_refuses_in_one_line(data: Any) -> None:
    try:
        spec = parse_pod_spec(data)
    except UserError as e:
        assert str(e) and "\n" not in str(e)
    else:
        assert isinstance(spec, PodSpec)
        assert normalised(parse_pod_spec(normalised(spec))) == normalised(spec)


@PROPERTY
@given(json_like)
def test_arbitrary_data(data: Any) -> None:
    parses_or_refuses_in_one_line(data)


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / name).read_text())


valid_examples = st.sampled_from([n for n in ACCEPTED if n.endswith(".pod")]).map(example)


def paths_in(data: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found += paths_in(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found += paths_in(value, (*prefix, i))
    return found


def replaced(data: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    copy = dict(data) if isinstance(data, dict) else list(data)
    copy[head] = replaced(data[head], rest, value)
    return copy


@PROPERTY
@given(valid_examples, st.data())
def test_mutated_examples(pod: dict[str, Any], data: st.DataObject) -> None:
    """Real pod files with one to three values swapped for arbitrary ones."""
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        path = data.draw(st.sampled_from(paths_in(pod)))
        pod = replaced(pod, path, data.draw(json_like))
    parses_or_refuses_in_one_line(pod)


def recased(data: Any, flips: st.DataObject) -> Any:
    if isinstance(data, dict):
        return {
            flips.draw(st.sampled_from([k.lower(), k.upper(), k.swapcase(), k])): recased(v, flips)
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [recased(item, flips) for item in data]
    return data


@PROPERTY
@given(valid_examples, st.data())
def test_key_case_does_not_matter(pod: dict[str, Any], data: st.DataObject) -> None:
    assert parse_pod_spec(recased(pod, data)) == parse_pod_spec(pod)


@PROPERTY
@given(st.text(max_size=200), st.booleans())
def test_arbitrary_text(text: str, yaml: bool) -> None:
    try:
        load_pod_spec(text, yaml=yaml, source="p")
    except UserError as e:
        assert str(e).startswith("p: ") and "\n" not in str(e)


@PROPERTY
@given(valid_examples, st.data(), st.booleans())
def test_damaged_text(pod: dict[str, Any], data: st.DataObject, yaml: bool) -> None:
    """Real pod files as text with a slice cut out or a character inserted."""
    text = json.dumps(pod, indent=2)  # JSON is valid YAML too
    i = data.draw(st.integers(min_value=0, max_value=len(text)))
    j = data.draw(st.integers(min_value=i, max_value=min(len(text), i + 8)))
    text = text[:i] + data.draw(st.text(max_size=2)) + text[j:]
    try:
        load_pod_spec(text, yaml=yaml)
    except UserError as e:
        assert "\n" not in str(e)


def test_examples_are_json(examples: Path) -> None:
    # The strategies above build on the JSON examples; they must stay valid.
    for name in ACCEPTED:
        if name.endswith(".pod"):
            parse_pod_spec(example(name))

"""Hostile and malformed pod files fail cleanly: one line, no traceback, nothing read
that should not be."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from hypercontainer.errors import UserError
from hypercontainer.specfields import MAX_FILE_BYTES
from hypercontainer.specload import MAX_TEXT, MAX_VALUES, load_pod_file, load_pod_spec


def refusal(text: str, yaml: bool = False) -> str:
    with pytest.raises(UserError) as caught:
        load_pod_spec(text, yaml=yaml, source="pod")
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_json_syntax_errors_name_line_and_column() -> None:
    assert refusal('{\n  "id": "a",\n  "containers": [\n}') == (
        "pod: invalid JSON at line 4 column 1: Expecting value"
    )
    assert refusal("") == "pod: invalid JSON at line 1 column 1: Expecting value"


def test_yaml_syntax_errors_name_line_and_column() -> None:
    assert refusal("id: a\ncontainers: [\n", yaml=True) == (
        "pod: invalid YAML at line 3 column 1: expected the node content, but found '<stream end>'"
    )
    assert refusal("a: b\n---\nc: d\n", yaml=True) == (
        "pod: invalid YAML at line 2 column 1: but found another document"
    )


def test_unsafe_yaml_tags_are_refused() -> None:
    message = refusal("id: !!python/object/apply:os.system ['true']\n", yaml=True)
    assert message.startswith("pod: invalid YAML at line 1 column 5: ")


def test_the_top_level_must_be_an_object() -> None:
    assert refusal("[1, 2]") == "pod: a pod file is a JSON object, not a list"
    assert refusal("12") == "pod: a pod file is a JSON object, not a number"
    assert refusal("true") == "pod: a pod file is a JSON object, not a boolean"
    assert refusal("", yaml=True) == "pod: a pod file is a YAML mapping, not empty"
    assert refusal("just text", yaml=True) == "pod: a pod file is a YAML mapping, not text"


def test_nan_is_not_json() -> None:
    assert (
        refusal('{"resource": {"vcpu": NaN}}')
        == "pod: invalid JSON: NaN is not a number JSON allows"
    )


def test_oversized_text(tmp_path: Path) -> None:
    assert refusal(" " * (MAX_TEXT + 1)) == "pod: the pod file is larger than 16 MiB"
    pod_file = tmp_path / "big.pod"
    pod_file.write_bytes(b" " * MAX_TEXT + "é".encode())  # cut inside a character
    with pytest.raises(UserError, match=r"big\.pod: the pod file is larger than 16 MiB$"):
        load_pod_file(pod_file)


def test_too_many_values() -> None:
    text = json.dumps({"labels": {str(i): "x" for i in range(MAX_VALUES)}})
    assert refusal(text) == f"pod: the pod file holds more than {MAX_VALUES} values"


def test_yaml_alias_bomb_stops_at_the_value_budget() -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    lines.append("labels: *a9")
    message = refusal("\n".join(lines) + "\n", yaml=True)
    assert message == f"pod: the pod file holds more than {MAX_VALUES} values"


@pytest.mark.parametrize("yaml", [False, True])
def test_deep_nesting(yaml: bool) -> None:
    text = "[" * 100_000 + "]" * 100_000
    message = refusal('{"labels": ' + text + "}", yaml=yaml)
    assert message in (
        f"pod: invalid {'YAML' if yaml else 'JSON'}: nested too deeply",
        f"pod: the pod file holds more than {MAX_VALUES} values",
    )


def test_many_containers_fail_fast() -> None:
    text = json.dumps({"containers": [{"image": "busybox"}] * 10_000})
    assert refusal(text) == (
        "pod: containers: list should have at most 64 items after validation, not 10000"
    )


def test_not_utf8(tmp_path: Path) -> None:
    pod_file = tmp_path / "p.pod"
    pod_file.write_bytes(b'{"id": "\xff"}')
    with pytest.raises(UserError, match=r"p\.pod: not UTF-8 text$"):
        load_pod_file(pod_file)


def test_missing_pod_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"nope\.pod: No such file or directory$"):
        load_pod_file(tmp_path / "nope.pod")


# ---- file URIs, read by hyperctl only ------------------------------------------


def pod_file_with_uri(tmp_path: Path, uri: str, **extra: str) -> Path:
    pod = {
        "containers": [{"image": "busybox", "files": [{"filename": "f", "path": "/f"}]}],
        "files": [{"name": "f", "uri": uri, **extra}],
    }
    path = tmp_path / "p.pod"
    path.write_text(json.dumps(pod))
    return path


def uri_refusal(path: Path) -> str:
    with pytest.raises(UserError) as caught:
        load_pod_file(path)
    return str(caught.value).removeprefix(f"{path}: ")


def test_relative_uri_is_read_next_to_the_pod_file(tmp_path: Path) -> None:
    (tmp_path / "conf").write_bytes(b"\x00binary\xff")
    spec = load_pod_file(pod_file_with_uri(tmp_path, "conf"))
    assert spec.files[0].data == b"\x00binary\xff"
    assert spec.files[0].content == base64.b64encode(b"\x00binary\xff").decode()


def test_file_uri_with_escapes(tmp_path: Path) -> None:
    (tmp_path / "a b").write_text("spaced")
    spec = load_pod_file(pod_file_with_uri(tmp_path, f"file://localhost{tmp_path}/a%20b"))
    assert spec.files[0].data == b"spaced"


def test_remote_hosts_and_schemes_are_refused(tmp_path: Path) -> None:
    assert uri_refusal(pod_file_with_uri(tmp_path, "file://server/etc/passwd")) == (
        "files[0].uri: file URIs are not fetched; only local file:// URIs are (or give content)"
    )
    assert uri_refusal(pod_file_with_uri(tmp_path, "https://example.com/x")) == (
        "files[0].uri: https URIs are not fetched; only local file:// URIs are (or give content)"
    )


def test_uri_and_content_together(tmp_path: Path) -> None:
    path = pod_file_with_uri(tmp_path, "conf", content="inline")
    assert uri_refusal(path) == "files[0].uri: give uri or content, not both"


def test_missing_uri_target(tmp_path: Path) -> None:
    assert uri_refusal(pod_file_with_uri(tmp_path, "absent")) == (
        f"files[0].uri: cannot read '{tmp_path}/absent': No such file or directory"
    )


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    assert uri_refusal(pod_file_with_uri(tmp_path, "fifo")) == (
        f"files[0].uri: '{tmp_path}/fifo' is not a regular file"
    )


def test_devices_and_directories_are_refused(tmp_path: Path) -> None:
    assert uri_refusal(pod_file_with_uri(tmp_path, "file:///dev/zero")) == (
        "files[0].uri: '/dev/zero' is not a regular file"
    )
    assert uri_refusal(pod_file_with_uri(tmp_path, ".")) == (
        f"files[0].uri: '{tmp_path}' is not a regular file"
    )


def test_oversized_uri_target(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * (MAX_FILE_BYTES + 1))
    assert uri_refusal(pod_file_with_uri(tmp_path, "big")) == (
        f"files[0].uri: '{tmp_path}/big' is larger than {MAX_FILE_BYTES} bytes"
    )


def test_without_base_dir_nothing_is_read(tmp_path: Path) -> None:
    # As hyperd parses a pod: the URI stays unread and is refused.
    (tmp_path / "conf").write_text("secret")
    text = pod_file_with_uri(tmp_path, f"file://{tmp_path}/conf").read_text()
    assert refusal(text) == (
        "pod: files[0].uri: hyperd reads no URIs;"
        " hyperctl inlines file:// and http(s) URIs as content"
    )

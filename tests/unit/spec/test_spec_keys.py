"""Keys match case-insensitively, as the original's decoder did; unknown keys are errors
named with the user's own spelling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypercontainer.errors import UserError
from hypercontainer.spec import PodSpec
from hypercontainer.specload import load_pod_spec, parse_pod_spec

Pod = Callable[..., dict[str, Any]]
Refusal = Callable[..., str]


def test_keys_match_in_any_case() -> None:
    spec = parse_pod_spec(
        {
            "ID": "p",
            "CONTAINERS": [
                {
                    "Image": "busybox",
                    "RestartPolicy": "ALWAYS",
                    "readonly": True,
                    "StopSignal": "term",
                    "User": {"NAME": "nobody", "additionalgroups": ["wheel"]},
                    "Volumes": [{"VOLUME": "v", "PATH": "/v", "READONLY": True}],
                    "Envs": [{"ENV": "A", "VALUE": "1"}],
                    "Ulimits": [{"Name": "NOFILE", "Soft": 1024, "Hard": 4096}],
                }
            ],
            "Resource": {"VCPU": 2, "Memory": 256},
            "Volumes": [{"Name": "v"}],
            "PortMappings": [{"ContainerPort": 80, "HOSTPORT": "8080", "Protocol": "UDP"}],
            "DnsSearch": ["example.com"],
            "dnsoptions": ["ndots:2"],
        }
    )
    (container,) = spec.containers
    assert container.restart_policy == "always" and container.read_only
    assert container.stop_signal == "SIGTERM"
    assert container.user is not None and container.user.additional_groups == ["wheel"]
    assert container.volumes[0].read_only and container.envs[0].value == "1"
    assert (container.ulimits[0].name, container.ulimits[0].hard) == ("nofile", 4096)
    assert spec.resource.vcpu == 2 and spec.portmappings[0].protocol == "udp"
    assert spec.portmappings[0].container_port == "80"
    assert spec.dns_search == ["example.com"] and spec.dns_options == ["ndots:2"]


def test_free_form_maps_keep_their_keys(pod: Pod) -> None:
    data = pod(labels={"Tier": "Web", "tier": "other"})
    data["containers"][0]["sysctl"] = {"Net.Core.Somaxconn": "1024"}
    data["containers"][0]["labels"] = {"A": "b"}
    spec = parse_pod_spec(data)
    assert spec.labels == {"Tier": "Web", "tier": "other"}
    assert spec.containers[0].sysctl == {"Net.Core.Somaxconn": "1024"}
    assert spec.containers[0].labels == {"A": "b"}


def test_unknown_key_names_the_place(pod: Pod, refusal: Refusal) -> None:
    data = pod()
    data["containers"][0]["imagee"] = "busybox"
    assert refusal(data) == "containers[0].imagee: unknown field"
    assert refusal(pod(Bogus=1)) == "Bogus: unknown field"


def test_errors_use_the_users_spelling(refusal: Refusal) -> None:
    data = {"Containers": [{"Name": "a", "IMAGE": ""}]}
    assert refusal(data) == "Containers[0].IMAGE: string should have at least 1 character"
    data = {"containers": [{"image": "busybox", "VOLUMES": [{"Volume": "nope", "path": "/x"}]}]}
    assert refusal(data) == "containers[0].VOLUMES[0].Volume: no pod volume is named 'nope'"


def test_missing_field(refusal: Refusal) -> None:
    assert refusal({"containers": [{"name": "a"}]}) == "containers[0].image: field required"


def test_a_key_given_twice_in_different_cases(pod: Pod, refusal: Refusal) -> None:
    data = pod()
    data["containers"][0]["Image"] = "alpine"
    assert refusal(data) == "containers[0].image: given twice, as 'image' and 'Image'"


def test_exact_duplicate_keys_are_refused() -> None:
    with pytest.raises(UserError, match=r"^invalid JSON: key 'id' appears twice in one object$"):
        load_pod_spec('{"id": "a", "id": "b"}')
    with pytest.raises(
        UserError, match=r"^invalid YAML at line 2 column 1: key 'id' appears twice$"
    ):
        load_pod_spec("id: a\nid: b\n", yaml=True)


def test_null_is_absent(pod: Pod) -> None:
    spec = parse_pod_spec(pod(id=None, files=None, hostname=None, resource=None))
    assert spec.id is None and spec.files == [] and spec.resource.memory == 128


def test_snake_case_is_not_a_wire_name(pod: Pod, refusal: Refusal) -> None:
    assert refusal(pod(dns_search=["a.b"])) == "dns_search: unknown field"


def test_unsupported_original_keys_say_why(pod: Pod, refusal: Refusal) -> None:
    data = pod(interfaces=[{"bridge": "br0"}])
    assert refusal(data) == (
        "interfaces[0].bridge: the host bridge is chosen by the network driver, not the pod file"
    )
    data = pod()
    data["containers"][0]["logPath"] = "/var/log/x"
    assert refusal(data) == "containers[0].logPath: log files are placed by hyperd"
    data = pod(volumes=[{"name": "r", "source": "img", "format": "rbd", "option": {}}])
    assert refusal(data) == "volumes[0].option: rbd volumes are not supported"


def test_yaml_name_is_the_id_and_json_name_is_not(refusal: Refusal) -> None:
    spec = load_pod_spec("Name: p\ncontainers:\n  - image: busybox\n", yaml=True)
    assert spec.id == "p"
    with pytest.raises(UserError) as caught:
        load_pod_spec("name: p\nid: q\n", yaml=True)
    assert str(caught.value) == "name: given twice, as 'name' and 'id'"
    with pytest.raises(UserError) as caught:
        load_pod_spec("name: 'bad id'\n", yaml=True)
    assert str(caught.value) == "name: 'bad id' is not a valid name (letters, digits, _ . -)"
    message = "name: unknown field (a JSON pod file names the pod with id)"
    assert refusal({"name": "p"}) == message


def test_odd_keys_stay_on_one_line(refusal: Refusal) -> None:
    assert refusal({"ima\nge": 1}) == "['ima\\nge']: unknown field"
    assert (
        refusal({"labels": {"": "x"}}) == "labels['']: key: string should have at least 1 character"
    )


def test_non_string_keys_in_yaml() -> None:
    with pytest.raises(UserError) as caught:
        load_pod_spec("containers:\n  - 1: busybox\n", yaml=True)
    assert str(caught.value) == "containers[0]: key 1 is not a string"


def test_the_model_itself_uses_canonical_keys_only() -> None:
    # Direct model validation (no loader) still refuses unknown keys.
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        PodSpec.model_validate({"containerz": []})
    assert PodSpec.model_validate({"dnsSearch": ["a.b"]}).dns_search == ["a.b"]
    assert PodSpec(dns_search=["a.b"]).dns_search == ["a.b"]

"""The normalised form (hyperctl validate) and the JSON schema (hyperctl schema)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from hypercontainer.errors import UserError
from hypercontainer.spec import PodSpec, normalised
from hypercontainer.specload import load_pod_file, load_pod_spec, parse_pod_spec

from tests.support.podfiles import ACCEPTED


@pytest.fixture(scope="module")
def schema() -> dict:
    schema = PodSpec.model_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


@pytest.mark.parametrize("name", ACCEPTED)
def test_round_trip(examples: Path, name: str) -> None:
    spec = load_pod_file(examples / name)
    data = normalised(spec)
    text = json.dumps(data)
    again = load_pod_spec(text)
    assert again == spec
    assert normalised(again) == data
    assert PodSpec.model_validate(data) == spec  # canonical keys need no loader


@pytest.mark.parametrize("name", ACCEPTED)
def test_normalised_output_fits_the_schema(examples: Path, name: str, schema: dict) -> None:
    jsonschema.validate(normalised(load_pod_file(examples / name)), schema)


def test_normalised_uses_canonical_keys_and_fills_defaults(examples: Path) -> None:
    data = normalised(load_pod_file(examples / "port-mapping.pod"))
    assert data["portmappings"] == [
        {"containerPort": "1300-1310", "hostPort": "3000-3010", "protocol": "tcp"}
    ]
    container = data["containers"][0]
    assert container["restartPolicy"] == "never" and container["readOnly"] is False
    assert data["resource"] == {"vcpu": 1, "memory": 128}
    assert data["log"] == {"type": "json-file", "config": {}}
    assert "id" in data and "hostname" not in data  # absent optional values are left out


def test_normalised_merges_container_ports() -> None:
    spec = parse_pod_spec(
        {"containers": [{"image": "busybox", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}
    )
    data = normalised(spec)
    assert "ports" not in data["containers"][0]
    assert data["portmappings"] == [{"containerPort": "80", "hostPort": "8080", "protocol": "tcp"}]
    assert normalised(parse_pod_spec(data)) == data


def test_schema_names_the_original_keys(schema: dict) -> None:
    assert schema["additionalProperties"] is False
    assert {"id", "containers", "portmappings", "dnsSearch", "dnsOptions", "tty"} <= set(
        schema["properties"]
    )
    container = schema["$defs"]["Container"]["properties"]
    assert {"restartPolicy", "readOnly", "stopSignal", "envs", "ulimits"} <= set(container)
    assert schema["$defs"]["Service"]["properties"].keys() >= {"serviceIP", "servicePort"}
    assert schema["$defs"]["Container"]["oneOf"] == [
        {"required": ["image"]},
        {"required": ["rootfs"]},
    ]


def test_schema_refuses_what_the_loader_refuses(schema: dict) -> None:
    bad = {"containers": [{"image": "busybox", "imagee": "x"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    with pytest.raises(UserError):
        parse_pod_spec(bad)

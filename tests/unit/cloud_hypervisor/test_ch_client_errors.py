"""Cloud Hypervisor's error bodies become one readable line."""

from __future__ import annotations

import requests
from hypercontainer.errors import DriverError
from hypercontainer_plugins.hypervisors.cloud_hypervisor.client import ApiError, error_messages


def response(status: int, body: bytes, reason: str = "") -> requests.Response:
    answer = requests.Response()
    answer.status_code = status
    answer._content = body
    answer.reason = reason
    return answer


def test_a_json_array_is_the_chain_of_messages():
    body = b'["Error from API", "The VM could not boot", "Failed to create vCPU"]'
    messages = error_messages(response(500, body))
    assert messages == ["Error from API", "The VM could not boot", "Failed to create vCPU"]
    error = ApiError("vm.boot", 500, messages)
    assert str(error) == (
        "cloud-hypervisor vm.boot: Error from API: The VM could not boot: Failed to create vCPU"
    )
    assert isinstance(error, DriverError)


def test_other_bodies_still_say_something():
    assert error_messages(response(400, b"")) == ["HTTP 400"]
    assert error_messages(response(400, b"", reason="Bad Request")) == ["Bad Request"]
    assert error_messages(response(500, b"plain text\n")) == ["plain text"]
    assert error_messages(response(500, b'{"error": 1}')) == ['{"error": 1}']
    assert str(ApiError("vm.pause", 500, [])) == "cloud-hypervisor vm.pause: HTTP 500"

"""Basic (htpasswd) and bearer-token authentication against a real docker-registry."""

from __future__ import annotations

import base64
import json
import stat

import pytest
from hypercontainer.errors import UserError

pytestmark = pytest.mark.registry


def nothing_stored(images) -> bool:
    return not list(images.store.blobs.all()) and not images.store.index.refs()


@pytest.mark.parametrize("fixture", ["basic_registry", "token_registry"])
def test_pull_without_credentials_is_denied(request, images, fixture):
    registry = request.getfixturevalue(fixture)
    with pytest.raises(UserError, match="access denied .* try `hyperctl login") as error:
        images.pull(f"{registry.address}/test/two")
    assert "\n" not in str(error.value) and nothing_stored(images)


@pytest.mark.parametrize("fixture", ["basic_registry", "token_registry"])
def test_login_with_a_wrong_password_fails_and_stores_nothing(request, images, fixture):
    registry = request.getfixturevalue(fixture)
    with pytest.raises(UserError, match="refused|failed"):
        images.login(registry.address, registry.username, "wrong")
    assert not (images.store.root / "auth.json").exists()


@pytest.mark.parametrize("fixture", ["basic_registry", "token_registry"])
def test_login_then_pull(request, images, fixture):
    registry = request.getfixturevalue(fixture)
    images.login(registry.address, registry.username, registry.password)
    auth_file = images.store.root / "auth.json"
    assert stat.S_IMODE(auth_file.stat().st_mode) == 0o600
    image = images.pull(f"{registry.address}/test/two")
    assert (images.layers_root() / image.layers[1] / "hello.txt").exists()


def test_token_server_is_asked_for_the_repository_scope(token_registry, images):
    images.login(token_registry.address, token_registry.username, token_registry.password)
    token_registry.token_server.requests.clear()
    images.pull(f"{token_registry.address}/test/busybox")
    asked = token_registry.token_server.requests
    assert asked and all(r["user"] == "tester" for r in asked)
    assert {s for r in asked for s in r["scope"]} == {"repository:test/busybox:pull"}
    assert {r["service"] for r in asked} == {"hc-test-registry"}


@pytest.mark.parametrize("fixture", ["basic_registry", "token_registry"])
def test_docker_config_json_credentials_are_used(request, images, tmp_path, fixture):
    registry = request.getfixturevalue(fixture)
    token = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    docker_dir = tmp_path / "docker-config"  # DOCKER_CONFIG, set by the conftest
    docker_dir.mkdir()
    (docker_dir / "config.json").write_text(
        json.dumps({"auths": {f"http://{registry.address}": {"auth": token}}})
    )
    assert images.pull(f"{registry.address}/test/busybox").layers

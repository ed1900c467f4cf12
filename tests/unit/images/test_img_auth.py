"""Credentials (ours, Docker's config.json) and WWW-Authenticate challenges."""

from __future__ import annotations

import base64
import json
import stat

import pytest
from hypercontainer.errors import UserError
from hypercontainer_plugins.images.auth import (
    Credentials,
    CredentialStore,
    parse_challenges,
)


def test_docker_hub_bearer_challenge():
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull"'
    )
    (challenge,) = parse_challenges(header)
    assert challenge.params == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/busybox:pull",
    }


def test_basic_challenge_and_several_challenges():
    (basic,) = parse_challenges('Basic realm="hc-test"')
    assert (basic.scheme, basic.params) == ("basic", {"realm": "hc-test"})
    several = parse_challenges('Basic realm="a b", Bearer realm="https://t/x",service=svc')
    assert [c.scheme for c in several] == ["basic", "bearer"]
    assert several[1].params == {"realm": "https://t/x", "service": "svc"}


def test_quoted_escapes_and_garbage():
    (challenge,) = parse_challenges(r'Bearer realm="a\"b", error="insufficient_scope"')
    assert challenge.params["realm"] == 'a"b'
    assert parse_challenges("") == []
    assert parse_challenges(", ,") == []


def test_login_credentials_stored_mode_0600_and_read_back(tmp_path):
    store = CredentialStore(tmp_path / "auth.json", docker_config=tmp_path / "none.json")
    store.save("localhost:5000", Credentials("alice", "pw:with:colons"))
    store.save("https://index.docker.io/v1/", Credentials("bob", "hub"))
    assert stat.S_IMODE((tmp_path / "auth.json").stat().st_mode) == 0o600
    assert store.get("localhost:5000") == Credentials("alice", "pw:with:colons")
    assert store.get("docker.io") == Credentials("bob", "hub")
    assert store.get("other:5000") is None
    assert store.remove("localhost:5000") and store.get("localhost:5000") is None


def test_docker_config_json_used_when_we_have_nothing(tmp_path):
    docker = tmp_path / "config.json"
    docker.write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {
                        "auth": base64.b64encode(b"hubuser:hubpw").decode()
                    },
                    "http://reg.local:5000": {"username": "u", "password": "p"},
                    "broken.example": {"auth": "%%%not-base64"},
                    "nocolon.example": {"auth": base64.b64encode(b"justuser").decode()},
                },
                "credsStore": "desktop",
            }
        )
    )
    store = CredentialStore(tmp_path / "auth.json", docker_config=docker)
    assert store.get("docker.io") == Credentials("hubuser", "hubpw")
    assert store.get("reg.local:5000") == Credentials("u", "p")
    assert store.get("broken.example") is None and store.get("nocolon.example") is None
    store.save("docker.io", Credentials("mine", "x"))
    assert store.get("docker.io") == Credentials("mine", "x")  # ours first


def test_password_never_in_repr():
    assert "hunter2" not in repr(Credentials("u", "hunter2"))


def test_corrupt_credentials_file_is_a_user_error(tmp_path):
    (tmp_path / "auth.json").write_text("{nope")
    store = CredentialStore(tmp_path / "auth.json", docker_config=tmp_path / "none.json")
    with pytest.raises(UserError, match="credentials file"):
        store.get("x")

"""Image references normalised as Docker does; loopback and insecure registries."""

from __future__ import annotations

import pytest
from hypercontainer.errors import UserError
from hypercontainer_plugins.images.reference import (
    familiar,
    is_loopback,
    parse,
    parse_registry,
)
from hypercontainer_plugins.images.registry import is_insecure

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    "text, normalised",
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("library/busybox", "docker.io/library/busybox:latest"),
        ("docker.io/busybox", "docker.io/library/busybox:latest"),
        ("index.docker.io/library/busybox:x", "docker.io/library/busybox:x"),
        ("user/app", "docker.io/user/app:latest"),
        ("localhost/app", "localhost/app:latest"),
        ("localhost:5000/app:v1", "localhost:5000/app:v1"),
        ("127.0.0.1:5000/a/b/c", "127.0.0.1:5000/a/b/c:latest"),
        ("[::1]:5000/app", "[::1]:5000/app:latest"),
        ("quay.io/org/app:1.0-rc_1", "quay.io/org/app:1.0-rc_1"),
        (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}"),
        (f"busybox:1.36@{DIGEST}", f"docker.io/library/busybox:1.36@{DIGEST}"),
        ("a__b/c.d-e", "docker.io/a__b/c.d-e:latest"),
    ],
)
def test_references_normalise_like_docker(text, normalised):
    assert str(parse(text)) == normalised


def test_digest_is_what_a_pinned_reference_asks_for():
    assert parse(f"busybox:1.36@{DIGEST}").target == DIGEST
    assert parse("busybox").target == "latest"


def test_default_registry_is_configurable():
    ref = parse("app", default_registry="registry.local:5000")
    assert str(ref) == "registry.local:5000/app:latest"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Busybox",
        "busybox:",
        "busybox:-bad",
        "busybox@sha256:short",
        "busybox@md5:" + "a" * 32,
        "a//b",
        "/busybox",
        "busybox/",
        "-a/b",
        "bad host!/x",
        "x:" + "t" * 200,
        "a" * 300,
        "busybox@" + DIGEST.upper(),
        "a/../b",
        "a:b:c",
        "a__b.c-d/e",
    ],
)
def test_invalid_references_refused_in_one_line(text):
    with pytest.raises(UserError) as error:
        parse(text)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "ref, shown",
    [
        ("busybox", ("busybox", "latest")),
        ("user/app:2", ("user/app", "2")),
        ("localhost:5000/app:v1", ("localhost:5000/app", "v1")),
    ],
)
def test_familiar_names_as_hyperctl_images_shows_them(ref, shown):
    assert familiar(parse(ref)) == shown


@pytest.mark.parametrize(
    "registry, loopback",
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("127.8.9.10", True),
        ("[::1]:5000", True),
        ("::1", True),
        ("10.0.0.1:5000", False),
        ("docker.io", False),
        ("localhost.example.com", False),
    ],
)
def test_loopback_registries(registry, loopback):
    assert is_loopback(registry) is loopback


def test_insecure_registries_by_name_host_or_cidr():
    assert is_insecure("reg.local:5000", ["reg.local:5000"])
    assert is_insecure("reg.local:5000", ["reg.local"])
    assert is_insecure("10.1.2.3:5000", ["10.0.0.0/8"])
    assert not is_insecure("10.1.2.3:5000", ["192.168.0.0/16", "other"])
    assert not is_insecure("quay.io", [])
    assert is_insecure("localhost:5000", [])


@pytest.mark.parametrize(
    "text, name",
    [
        ("https://index.docker.io/v1/", "docker.io"),
        ("docker.io", "docker.io"),
        ("localhost:5000", "localhost:5000"),
        ("http://127.0.0.1:5000/", "127.0.0.1:5000"),
    ],
)
def test_registry_names_for_login(text, name):
    assert parse_registry(text) == name


def test_bad_registry_name_refused():
    with pytest.raises(UserError, match="invalid registry name"):
        parse_registry("not a host/with path")

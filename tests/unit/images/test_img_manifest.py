"""Manifests and indexes: the supported formats, schema 1 refused, platform selection."""

from __future__ import annotations

import json

import pytest
from hypercontainer.errors import UserError
from hypercontainer_plugins.images import imageconfig, manifest
from hypercontainer_plugins.images.manifest import Index, Manifest, Platform

D1, D2, D3 = ("sha256:" + c * 64 for c in "123")


def body(**data) -> bytes:
    return json.dumps(data).encode()


def image_manifest(
    media_type=manifest.OCI_MANIFEST,
    config_type=manifest.OCI_CONFIG,
    layer_type="application/vnd.oci.image.layer.v1.tar+gzip",
    **extra,
) -> bytes:
    data = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": config_type, "digest": D1, "size": 10},
        "layers": [{"mediaType": layer_type, "digest": D2, "size": 20}],
    } | extra
    return json.dumps(data).encode()


def entry(digest, os_="linux", arch="amd64", variant="", media_type=manifest.OCI_MANIFEST):
    platform = {"os": os_, "architecture": arch} | ({"variant": variant} if variant else {})
    return {"mediaType": media_type, "digest": digest, "size": 100, "platform": platform}


@pytest.mark.parametrize(
    "media_type, config_type, layer_type",
    [
        (manifest.OCI_MANIFEST, manifest.OCI_CONFIG, "application/vnd.oci.image.layer.v1.tar+zstd"),
        (
            manifest.DOCKER_MANIFEST,
            manifest.DOCKER_CONFIG,
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        ),
        (manifest.OCI_MANIFEST, manifest.OCI_CONFIG, "application/vnd.oci.image.layer.v1.tar"),
    ],
)
def test_image_manifests_parse(media_type, config_type, layer_type):
    parsed = manifest.parse(image_manifest(media_type, config_type, layer_type))
    assert isinstance(parsed, Manifest)
    assert parsed.config.digest == D1 and [layer.digest for layer in parsed.layers] == [D2]


def test_media_type_may_come_from_the_content_type_header():
    data = json.loads(image_manifest())
    del data["mediaType"]
    parsed = manifest.parse(json.dumps(data).encode(), manifest.DOCKER_MANIFEST + "; charset=x")
    assert parsed.media_type == manifest.DOCKER_MANIFEST


@pytest.mark.parametrize("media_type", [manifest.OCI_INDEX, manifest.DOCKER_LIST])
def test_indexes_parse(media_type):
    parsed = manifest.parse(
        body(
            schemaVersion=2,
            mediaType=media_type,
            manifests=[entry(D1), entry(D2, arch="arm64", variant="v8")],
        )
    )
    assert isinstance(parsed, Index) and len(parsed.manifests) == 2


def test_schema1_refused_with_a_clear_message():
    signed = body(schemaVersion=1, name="x", tag="latest", fsLayers=[], signatures=[])
    with pytest.raises(UserError, match="schema 1 .* not supported"):
        manifest.parse(signed, "application/vnd.docker.distribution.manifest.v1+prettyjws")


@pytest.mark.parametrize(
    "data, message",
    [
        (b"not json", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (body(schemaVersion=3), "schemaVersion"),
        (
            image_manifest(config_type="application/vnd.cncf.helm.config.v1+json"),
            "not a container image",
        ),
        (
            image_manifest(layer_type="application/vnd.oci.image.layer.v1.tar+encrypted"),
            "unsupported layer media type",
        ),
        (
            image_manifest(
                config={"mediaType": manifest.OCI_CONFIG, "digest": "sha256:../../etc", "size": 1}
            ),
            "invalid digest",
        ),
        (
            image_manifest(config={"mediaType": manifest.OCI_CONFIG, "digest": D1, "size": -1}),
            "invalid size",
        ),
        (
            image_manifest(config={"mediaType": manifest.OCI_CONFIG, "digest": D1, "size": 2**60}),
            "invalid size",
        ),
        (image_manifest(layers="x"), "not a list"),
        (b" " * (manifest.MAX_MANIFEST_SIZE + 1), "larger than"),
        (body(schemaVersion=2, mediaType="application/x-unknown"), "unsupported manifest"),
    ],
)
def test_malformed_manifests_refused(data, message):
    with pytest.raises(UserError, match=message):
        manifest.parse(data)


INDEX = Index(
    manifest.OCI_INDEX,
    tuple(
        manifest._descriptor(e)
        for e in [
            entry(D1),
            entry(D2, arch="arm64", variant="v8"),
            entry(D3, arch="arm", variant="v7"),
            {
                "mediaType": manifest.OCI_MANIFEST,
                "digest": D3,
                "size": 5,
                "platform": {"os": "unknown", "architecture": "unknown"},
            },
        ]
    ),
)


@pytest.mark.parametrize(
    "wanted, digest",
    [
        ("linux/amd64", D1),
        ("linux/x86_64", D1),
        ("linux/arm64", D2),
        ("linux/arm64/v8", D2),
        ("linux/aarch64", D2),
        ("linux/arm/v7", D3),
    ],
)
def test_platform_selection(wanted, digest):
    assert manifest.select(INDEX, manifest.parse_platform(wanted)).digest == digest


def test_missing_platform_lists_what_exists():
    with pytest.raises(
        UserError,
        match=r"no image for platform linux/s390x \(available: "
        r"linux/amd64, linux/arm/v7, linux/arm64/v8",
    ):
        manifest.select(INDEX, Platform("linux", "s390x"))


@pytest.mark.parametrize("text", ["linux", "linux/", "a/b/c/d", ""])
def test_bad_platform_setting_refused(text):
    with pytest.raises(UserError, match="invalid platform"):
        manifest.parse_platform(text)


def test_image_config_parsed():
    config = body(
        created="2024-01-02T03:04:05Z",
        os="linux",
        architecture="amd64",
        config={
            "Entrypoint": ["/init"],
            "Cmd": ["-v"],
            "Env": ["A=1"],
            "WorkingDir": "/w",
            "User": "1000:1000",
            "ExposedPorts": {"80/tcp": {}},
            "Labels": {"k": "v"},
            "StopSignal": "SIGINT",
        },
        rootfs={"type": "layers", "diff_ids": [D2, D3]},
    )
    parsed = imageconfig.parse(config)
    assert parsed.diff_ids == (D2, D3)
    c = parsed.container
    assert (c.entrypoint, c.cmd, c.env, c.working_dir, c.user) == (
        ["/init"],
        ["-v"],
        ["A=1"],
        "/w",
        "1000:1000",
    )
    assert (c.exposed_ports, c.labels, c.stop_signal) == (["80/tcp"], {"k": "v"}, "SIGINT")


@pytest.mark.parametrize(
    "config, message",
    [
        (body(rootfs={"type": "layers", "diff_ids": ["sha256:bad"]}), "invalid digest"),
        (body(rootfs={"type": "other"}), "rootfs"),
        (body(rootfs={"type": "layers", "diff_ids": []}, config={"Cmd": "sh"}), "Cmd"),
        (body(rootfs={"type": "layers", "diff_ids": []}, config=[]), "not an object"),
    ],
)
def test_bad_image_config_refused(config, message):
    with pytest.raises(UserError, match=message):
        imageconfig.parse(config)

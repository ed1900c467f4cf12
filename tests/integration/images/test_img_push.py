"""Pushing to a real docker-registry (anonymous, htpasswd and token auth), checked with
skopeo and by pulling the image back by digest into another store."""

from __future__ import annotations

import json
import random
import subprocess
import uuid

import pytest
import requests
from hypercontainer.errors import NotFound, UserError
from hypercontainer_plugins.images import build, digests
from hypercontainer_plugins.images.build import Image, Layer

from tests.support import imagebuild
from tests.support.imagestore import statuses
from tests.support.registry import Registry, free_port

pytestmark = pytest.mark.registry


def skopeo_inspect(registry: Registry, reference: str) -> dict:
    command = ["skopeo", "inspect", "--tls-verify=false", f"docker://{reference}"]
    if registry.auth:
        command[2:2] = ["--creds", f"{registry.username}:{registry.password}"]
    return json.loads(
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=120).stdout
    )


def logged_in(make_images, registry: Registry, **kwargs):
    images = make_images(**kwargs)
    images.login(registry.address, registry.username, registry.password)
    return images


def pulled_back(make_images, registry: Registry, root, target: str, digest: str):
    """`target`'s repository @ `digest`, pulled into a store of its own at `root`."""
    elsewhere = logged_in(make_images, registry, state_root=root)
    return elsewhere, elsewhere.pull(f"{target.rsplit(':', 1)[0]}@{digest}")


def unique(name: str) -> str:
    return f"pushed/{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def requests_sent(monkeypatch) -> list[tuple[str, str]]:
    """(method, URL) of every request the images driver sends (observed, not changed)."""
    sent: list[tuple[str, str]] = []
    original = requests.Session.request

    def recording(self, method, url, *args, **kwargs):
        sent.append((method, url))
        return original(self, method, url, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", recording)
    return sent


@pytest.mark.parametrize("fixture", ["basic_registry", "token_registry"])
def test_push_mounts_what_the_registry_has_and_pulls_back_by_digest(
    request, make_images, tmp_path, fixture
):
    registry = request.getfixturevalue(fixture)
    images = logged_in(make_images, registry)
    pulled = images.pull(f"{registry.address}/test/two")
    target = f"{registry.address}/{unique('two')}:v1"
    events: list[dict] = []

    pushed = images.push(f"{registry.address}/test/two", target, events.append)

    record = images.store.image(pulled.id)
    assert pushed.reference == target and pushed.digest == record.manifest_digest
    # Both layers live in test/two on the same registry: mounted, not uploaded again.
    layer_ids = [digests.short(layer.digest) for layer in record.layers]
    assert statuses(events) == {layer: ["preparing", "mounted"] for layer in layer_ids}
    assert {e["from"] for e in events if e["status"] == "mounted"} == {"test/two"}
    inspected = skopeo_inspect(registry, target)
    assert inspected["Digest"] == pushed.digest
    assert inspected["Layers"] == [layer.digest for layer in record.layers]

    elsewhere, back = pulled_back(make_images, registry, tmp_path / "back", target, pushed.digest)
    assert back.id == pulled.id and back.layers == pulled.layers
    assert (elsewhere.layers_root() / back.layers[1] / "hello.txt").read_text() == (
        "hello from layer two\n"
    )


@pytest.mark.parametrize("fixture", ["basic_registry", "token_registry"])
def test_push_uploads_a_local_image_and_skips_blobs_already_there(
    request, make_images, tmp_path, fixture
):
    registry = request.getfixturevalue(fixture)
    images = logged_in(make_images, registry)
    archive = tmp_path / "local.tar"
    image = Image(
        [imagebuild.busybox_base(), Layer().file("local.txt", b"made here\n")],
        cmd=["cat", "/local.txt"],
    )
    build.write_archive(archive, [("docker.io/library/local:1", *image.build())])
    images.load(archive)
    target = f"{registry.address}/{unique('local')}:1"
    images.tag("local:1", target)

    first: list[dict] = []
    pushed = images.push(target, progress=first.append)
    assert set(map(tuple, statuses(first).values())) == {("preparing", "pushing", "pushed")}
    again: list[dict] = []
    assert images.push(target, progress=again.append).digest == pushed.digest
    assert set(map(tuple, statuses(again).values())) == {("preparing", "present")}

    assert skopeo_inspect(registry, target)["Digest"] == pushed.digest
    elsewhere, back = pulled_back(make_images, registry, tmp_path / "back", target, pushed.digest)
    assert back.config.cmd == ["cat", "/local.txt"]
    assert (elsewhere.layers_root() / back.layers[1] / "local.txt").read_bytes() == b"made here\n"


def test_large_blobs_go_in_chunks_small_ones_in_one_request(
    registry, make_images, tmp_path, requests_sent
):
    images = make_images(push_chunk_size=1 << 16)
    archive = tmp_path / "big.tar"
    data = random.Random(7).randbytes(300_000)  # incompressible: a ~300 KB blob
    image = Image([Layer().file("small", b"tiny\n"), Layer().file("big.bin", data)])
    build.write_archive(archive, [("docker.io/library/big:1", *image.build())])
    images.load(archive)
    record = images.store.image(images.resolve("big:1").id)
    small, big = record.layers
    assert small.size < 1 << 16 < big.size

    target = f"{registry.address}/{unique('big')}:1"
    pushed = images.push("big:1", target)

    patches = [url for method, url in requests_sent if method == "PATCH"]
    puts = [url for method, url in requests_sent if method == "PUT" and "digest=" in url]
    assert len(patches) == -(-big.size // (1 << 16))  # ceil: every chunk in its own PATCH
    assert len(puts) == 3  # config, small and big layer: each upload closed by its digest
    elsewhere, back = pulled_back(make_images, registry, tmp_path / "back", target, pushed.digest)
    assert (elsewhere.layers_root() / back.layers[1] / "big.bin").read_bytes() == data


@pytest.mark.parametrize("fixture", ["basic_registry", "token_registry"])
def test_push_without_login_is_denied_in_one_line_naming_the_repository(
    request, make_images, fixture
):
    registry = request.getfixturevalue(fixture)
    images = logged_in(make_images, registry)
    images.pull(f"{registry.address}/test/busybox")
    images.logout(registry.address)
    target = f"{registry.address}/{unique('denied')}:1"
    with pytest.raises(UserError) as error:
        images.push(f"{registry.address}/test/busybox", target)
    message = str(error.value)
    assert "\n" not in message and f"push to {target.rsplit(':', 1)[0]}: access denied" in message
    assert f"try `hyperctl login {registry.address}`" in message
    result = subprocess.run(
        [
            "skopeo",
            "inspect",
            "--tls-verify=false",
            "--creds",
            f"{registry.username}:{registry.password}",
            f"docker://{target}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0  # nothing was pushed


def test_push_to_an_unreachable_registry_says_which_and_why(registry, images):
    images.pull(f"{registry.address}/test/busybox")
    dead = f"127.0.0.1:{free_port()}"
    with pytest.raises(UserError) as error:
        images.push(f"{registry.address}/test/busybox", f"{dead}/x/y:1")
    assert str(error.value) == f"cannot reach registry {dead}: connection refused"


def test_push_refuses_what_it_cannot_name(registry, images):
    images.pull(f"{registry.address}/test/busybox")
    image_id = images.resolve(f"{registry.address}/test/busybox").id
    with pytest.raises(UserError, match="is an image id: name where to push it"):
        images.push(image_id[7:19])
    with pytest.raises(UserError, match="a push names a tag"):
        images.push(image_id, f"{registry.address}/x@{image_id}")
    with pytest.raises(NotFound, match="not found locally"):
        images.push("nothing-here:1", f"{registry.address}/x:1")

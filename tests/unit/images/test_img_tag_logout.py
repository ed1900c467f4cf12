"""`hyperctl tag` (another name for a local image) and `hyperctl logout` (forget a login)."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest
from hypercontainer.config import Config
from hypercontainer.errors import NotFound, UserError
from hypercontainer_plugins.images import build
from hypercontainer_plugins.images.auth import Credentials, CredentialStore
from hypercontainer_plugins.images.build import Image, Layer
from hypercontainer_plugins.images.driver import OciImages


@pytest.fixture
def driver(tmp_path) -> OciImages:
    return OciImages(Config(state_root=tmp_path / "state"))


def load(driver: OciImages, path: Path, images: dict[str, Image]) -> None:
    build.write_archive(path, [(name, *image.build()) for name, image in images.items()])
    driver.load(path)


def refs(driver: OciImages) -> dict[str, str]:
    return {r: image_id for r, image_id, _ in driver.store.index.refs()}


def test_tag_names_the_image_again_and_rmi_of_one_name_only_untags(driver, tmp_path):
    load(driver, tmp_path / "a.tar", {"docker.io/library/app:1": Image([Layer().file("a", b"a")])})
    original = driver.resolve("app:1")
    assert driver.tag("app:1", "127.0.0.1:5000/team/app:2") == "127.0.0.1:5000/team/app:2"
    tagged = driver.resolve("127.0.0.1:5000/team/app:2")
    assert (tagged.id, tagged.layers) == (original.id, original.layers)
    assert {(i.repository, i.tag) for i in driver.list()} == {
        ("app", "1"),
        ("127.0.0.1:5000/team/app", "2"),
    }
    assert driver.remove("app:1") == ["Untagged: app:1"]
    assert driver.resolve(original.id).id == original.id


def test_tag_by_id_prefix_defaults_to_latest_and_moves_the_tag(driver, tmp_path):
    load(
        driver,
        tmp_path / "a.tar",
        {
            "docker.io/library/one:1": Image([Layer().file("one", b"1")]),
            "docker.io/library/two:1": Image([Layer().file("two", b"2")]),
        },
    )
    one, two = driver.resolve("one:1").id, driver.resolve("two:1").id
    assert driver.tag(one[7:19], "moving") == "docker.io/library/moving:latest"
    assert driver.tag("two:1", "moving") == "docker.io/library/moving:latest"
    assert refs(driver)["docker.io/library/moving:latest"] == two
    assert driver.resolve("one:1").id == one  # the first image keeps its own name


def test_bad_tags_change_nothing(driver, tmp_path):
    load(driver, tmp_path / "a.tar", {"docker.io/library/app:1": Image([Layer().file("a", b"a")])})
    before = refs(driver)
    with pytest.raises(NotFound, match="not found locally"):
        driver.tag("missing:1", "other:1")
    with pytest.raises(UserError, match="digest is fixed"):
        driver.tag("app:1", "app@sha256:" + "a" * 64)
    with pytest.raises(UserError, match="invalid image reference"):
        driver.tag("app:1", "Bad/Name:x")
    assert refs(driver) == before


def docker_config(tmp_path: Path, auths: dict) -> Path:
    path = tmp_path / "docker-config" / "config.json"  # DOCKER_CONFIG, set by the conftest
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"auths": auths}))
    return path


def test_logout_removes_every_spelling_login_would_match(driver):
    store = driver.credentials
    store.save("127.0.0.1:5000", Credentials("u", "p"))
    store.save("docker.io", Credentials("hub", "p"))
    # Entries written by hand in config.json style name the same registries.
    data = json.loads(store.path.read_text())
    token = base64.b64encode(b"old:pw").decode()
    data["auths"]["http://127.0.0.1:5000"] = {"auth": token}
    data["auths"]["https://index.docker.io/v1/"] = {"auth": token}
    store.path.write_text(json.dumps(data))

    removed = driver.logout("http://127.0.0.1:5000/")
    assert removed == "Removing login credentials for 127.0.0.1:5000"
    assert store.get("127.0.0.1:5000") is None
    assert driver.logout("") == "Removing login credentials for docker.io"  # the default
    assert store.get("docker.io") is None
    assert json.loads(store.path.read_text()) == {"auths": {}}
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert driver.logout("127.0.0.1:5000") == "Not logged in to 127.0.0.1:5000"


def test_logout_says_when_dockers_config_still_logs_in(driver, tmp_path):
    path = docker_config(
        tmp_path, {"https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw").decode()}}
    )
    message = driver.logout("docker.io")
    assert message.startswith("Not logged in to docker.io; ")
    assert f"{path} still holds credentials" in message and "docker logout docker.io" in message
    assert path.read_text() == json.dumps(
        {"auths": {"https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw").decode()}}}
    )  # Docker's file is never written


def test_logout_of_an_invalid_name_is_a_user_error(driver):
    with pytest.raises(UserError, match="invalid registry name"):
        driver.logout("not a registry")


def test_remove_without_a_file_is_false(tmp_path):
    store = CredentialStore(tmp_path / "auth.json", docker_config=tmp_path / "none.json")
    assert store.remove("x:1") is False
    assert list(tmp_path.iterdir()) == []  # not even a lock file

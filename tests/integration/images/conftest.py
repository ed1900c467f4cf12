"""Fixtures: real registries (anonymous, htpasswd, token) holding images the tests built.

The registries are started once per session and filled with skopeo; tests
that damage a registry start their own with `fresh_registry`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypercontainer.config import Config
from hypercontainer_plugins.images.driver import OciImages

from tests.support import imagebuild
from tests.support.registry import Registry

# What every session registry holds: repository:tag -> image.
CONTENT = {
    "test/busybox:latest": imagebuild.busybox,
    "test/two:latest": imagebuild.two_layers,
    "test/two-zstd:latest": lambda: imagebuild.two_layers("zstd"),
    "test/two-plain:latest": lambda: imagebuild.two_layers(""),
}
MULTI = "test/multi:latest"


def fill(registry: Registry, layout_dir: Path) -> None:
    built = {name: make() for name, make in CONTENT.items()}
    built[MULTI] = imagebuild.multi_platform()
    imagebuild.write_layout(layout_dir, built)
    for name in built:
        registry.push(layout_dir, name, name, all_platforms=name == MULTI)


def _started(tmp_path_factory, auth: str | None, tls: bool = False) -> Iterator[Registry]:
    workdir = tmp_path_factory.mktemp(f"registry-{auth or 'anon'}{'-tls' if tls else ''}")
    registry = Registry.start(workdir, auth=auth, tls=tls)
    try:
        fill(registry, workdir / "layout")
        yield registry
    finally:
        registry.stop()


@pytest.fixture(scope="session")
def registry(tmp_path_factory) -> Iterator[Registry]:
    yield from _started(tmp_path_factory, None)


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory) -> Iterator[Registry]:
    yield from _started(tmp_path_factory, "htpasswd")


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory) -> Iterator[Registry]:
    yield from _started(tmp_path_factory, "token")


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory) -> Iterator[Registry]:
    yield from _started(tmp_path_factory, None, tls=True)


@pytest.fixture
def fresh_registry(tmp_path) -> Iterator[Registry]:
    """A registry of this test's own, free to damage."""
    registry = Registry.start(tmp_path / "registry")
    try:
        fill(registry, tmp_path / "layout")
        yield registry
    finally:
        registry.stop()


@pytest.fixture(autouse=True)
def no_docker_credentials(tmp_path, monkeypatch) -> None:
    """Never read the host's ~/.docker/config.json."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))


@pytest.fixture
def make_images(tmp_path) -> Callable[..., OciImages]:
    """An images driver over a fresh store; keyword arguments go to its [oci] table."""

    def make(state_root: Path | None = None, **settings) -> OciImages:
        config = Config(state_root=state_root or tmp_path / "state").with_table("oci", **settings)
        return OciImages(config)

    return make


@pytest.fixture
def images(make_images) -> OciImages:
    return make_images()

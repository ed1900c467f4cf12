"""Fixtures for the images unit tests: layers written to blob files and unpacked for real."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypercontainer_plugins.images import build
from hypercontainer_plugins.images.unpack import LayerResult, unpack


@pytest.fixture
def layer_dir(tmp_path) -> Path:
    return tmp_path / "layer"


@pytest.fixture
def work_dir(tmp_path) -> Path:
    return tmp_path / "tmp"


@pytest.fixture
def unpack_layer(tmp_path, layer_dir, work_dir) -> Callable[..., LayerResult]:
    """unpack_layer(layer, compression="gzip", limit=..., privileged=None) -> result."""

    def run(
        layer: build.Layer,
        compression: str = "gzip",
        limit: int = 64 * 2**20,
        privileged: bool | None = None,
        expected_diff_id: str | None = None,
    ) -> LayerResult:
        blob = build.compress(layer.tar(), compression)
        path = tmp_path / "blob"
        path.write_bytes(blob.data)
        return unpack(
            path,
            layer_dir,
            work_dir,
            limit,
            "layer test",
            expected_diff_id=expected_diff_id,
            privileged=privileged,
        )

    return run


@pytest.fixture(autouse=True)
def no_docker_credentials(tmp_path, monkeypatch) -> None:
    """Never read the host's ~/.docker/config.json."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))

import pytest
from hypercontainer.config import Config


@pytest.fixture
def config(tmp_path):
    return Config(
        state_root=tmp_path / "state", run_root=tmp_path / "run", cache_root=tmp_path / "cache"
    )

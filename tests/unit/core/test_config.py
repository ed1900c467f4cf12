"""Configuration: defaults, a TOML file, environment overrides, one-line errors."""

import pytest
from hypercontainer import config, paths
from hypercontainer.errors import UserError


def test_defaults():
    cfg = config.load(environ={"HOME": "/nonexistent"})
    assert (cfg.hypervisor, cfg.network, cfg.images) == ("qemu", "user", "oci")
    assert cfg.guest.boot_timeout > 0


def test_file_then_environment(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('network = "bridge"\n[bridge]\nsubnet = "10.9.0.0/24"\n')
    cfg = config.load(path, environ={"HYPERCONTAINER_BRIDGE__NAME": "br9"})
    assert cfg.network == "bridge"
    assert (cfg.bridge.subnet, cfg.bridge.name) == ("10.9.0.0/24", "br9")
    cfg = config.load(path, environ={"HYPERCONTAINER_NETWORK": "user"})
    assert cfg.network == "user"


def test_unknown_key_is_one_line(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[qemu]\nbinnary = 'x'\n")
    with pytest.raises(UserError, match=r"qemu.binnary: Extra inputs are not permitted"):
        config.load(path, environ={})


def test_broken_toml_and_missing_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("network = \n")
    with pytest.raises(UserError, match="c.toml"):
        config.load(path, environ={})
    with pytest.raises(UserError, match="does not exist"):
        config.load(tmp_path / "missing.toml", environ={})


def test_hyperctl_finds_the_socket_the_daemon_uses(tmp_path, monkeypatch):
    path = tmp_path / "c.toml"
    path.write_text(f'run_root = "{tmp_path / "run"}"\n')
    monkeypatch.delenv("HYPERCONTAINER_RUN_ROOT", raising=False)
    assert paths.socket_path(str(path)) == config.load(path, environ={}).socket_path
    monkeypatch.setenv("HYPERCONTAINER_RUN_ROOT", str(tmp_path / "other"))
    assert paths.socket_path(str(path)) == tmp_path / "other" / "hyperd.sock"

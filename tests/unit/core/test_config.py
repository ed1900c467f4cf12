"""Configuration: defaults, a TOML file, environment overrides, one-line errors."""

import subprocess
import sys

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


def test_hyperctl_knows_the_configurations_keys():
    from hypercontainer.config import Config
    from hypercontainer.paths import KNOWN_KEYS

    assert set(Config.model_fields) == KNOWN_KEYS


@pytest.mark.parametrize("text, error", [
    (None, "config file {path} does not exist"),
    ("hypervisor = \n", "config file {path} is not valid TOML: Invalid value"),
    ('hypervisr = "qemu"\n', "config file {path}: unknown key 'hypervisr' (keys: bridge,"),
])
def test_every_hyperctl_command_refuses_a_config_hyperd_would(tmp_path, text, error):
    path = tmp_path / "config.toml"
    if text is not None:
        path.write_text(text)
    for verb in (["schema"], ["list"], ["validate", "x.json"], ["version"]):
        result = subprocess.run([sys.executable, "-m", "hypercontainer.cli.main", "--config",
                                 str(path), *verb], capture_output=True, text=True)
        assert result.returncode == 1 and result.stdout == "", verb
        assert result.stderr.startswith("hyperctl ERROR: " + error.format(path=path)), verb
        assert result.stderr.count("\n") == 1

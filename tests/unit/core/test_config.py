"""Configuration: defaults, a TOML file, environment overrides, one-line errors."""

import subprocess
import sys

import pytest
from hypercontainer import config, drivers, paths
from hypercontainer.driver_settings import check_tables
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
    assert cfg.table("bridge") == {"subnet": "10.9.0.0/24", "name": "br9"}
    cfg = config.load(path, environ={"HYPERCONTAINER_NETWORK": "user"})
    assert cfg.network == "user"


def test_a_drivers_table_is_checked_by_that_driver_in_one_line(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[qemu]\nbinnary = 'x'\n")
    cfg = config.load(path, environ={})
    with pytest.raises(UserError) as refused:
        drivers.load("hypervisor", "qemu", cfg)
    assert str(refused.value) == f"config ({path}): qemu.binnary: Extra inputs are not permitted"
    path.write_text('network = "user"\n[bridge]\nsubnet = 5\n')  # a driver not selected
    with pytest.raises(UserError, match=r"bridge.subnet: Input should be a valid string"):
        check_tables(config.load(path, environ={}))


def test_the_core_keeps_only_its_own_keys_and_each_driver_gets_its_table(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[qemu]\naccelerator = "tcg"\nstop_timeout = 4\n[guest]\nboot_timeout = 9\n')
    cfg = config.load(path, environ={"HYPERCONTAINER_CNI__NETWORK": "pods"})
    assert not hasattr(cfg, "qemu") and cfg.guest.boot_timeout == 9
    qemu = drivers.load("hypervisor", "qemu", cfg)
    assert (qemu.settings.accelerator, qemu.settings.stop_timeout) == ("tcg", 4.0)
    assert drivers.load("network", "cni", cfg).settings.network == "pods"
    assert drivers.load("hypervisor", "cloud-hypervisor", cfg).settings.stop_timeout == 10.0


def test_configuration_files_of_older_versions_keep_working(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        '[cloud_hypervisor]\nbinary = "/opt/ch"\n[user_network]\n'
        'host_ip = "0.0.0.0"\n[registry]\ninsecure_registries = ["lan:5000"]\n'
    )
    cfg = config.load(path, environ={"HYPERCONTAINER_CLOUD_HYPERVISOR__STOP_TIMEOUT": "3"})
    ch = drivers.load("hypervisor", "cloud-hypervisor", cfg)
    assert (ch.settings.binary, ch.settings.stop_timeout) == ("/opt/ch", 3.0)
    assert drivers.load("network", "user", cfg).settings.host_ip == "0.0.0.0"
    assert drivers.load("images", "oci", cfg).settings.insecure_registries == ["lan:5000"]
    check_tables(cfg)


def test_a_table_no_installed_driver_owns_is_refused(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[qemuu]\nbinary = 'x'\n")
    with pytest.raises(
        UserError,
        match=r"unknown table \[qemuu\]: no installed driver is "
        r"called 'qemuu' \(drivers: bridge, cloud-hypervisor",
    ):
        config.load(path, environ={})
    with pytest.raises(UserError, match=r"HYPERCONTAINER_\* variables\): unknown table \[qemuu\]"):
        config.load(environ={"HYPERCONTAINER_QEMUU__BINARY": "x", "HOME": str(tmp_path)})


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

    assert set(Config.model_fields) - {"tables"} == KNOWN_KEYS


@pytest.mark.parametrize(
    "text, error",
    [
        (None, "config file {path} does not exist"),
        ("hypervisor = \n", "config file {path} is not valid TOML: Invalid value"),
        (
            'hypervisr = "qemu"\n',
            "config file {path}: unknown key 'hypervisr' (keys: admission, cache_root,",
        ),
    ],
)
def test_every_hyperctl_command_refuses_a_config_hyperd_would(tmp_path, text, error):
    path = tmp_path / "config.toml"
    if text is not None:
        path.write_text(text)
    for verb in (["schema"], ["list"], ["validate", "x.json"], ["version"]):
        result = subprocess.run(
            [sys.executable, "-m", "hypercontainer.cli.main", "--config", str(path), *verb],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 1 and result.stdout == "", verb
        assert result.stderr.startswith("hyperctl ERROR: " + error.format(path=path)), verb
        assert result.stderr.count("\n") == 1

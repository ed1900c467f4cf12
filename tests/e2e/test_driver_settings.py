"""Each driver owns its table of the configuration: `hyperctl info` shows the selected
drivers' effective settings, and hyperd refuses a mistake in any driver's table."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.daemon import Hyperd


def test_info_shows_each_selected_drivers_settings():
    daemon = Hyperd(
        config='[qemu]\naccelerator = "tcg"\n[user_network]\nhost_ip = "127.0.0.1"\n'
        '[registry]\ninsecure_registries = ["lan:5000"]\n'
    ).start()
    try:
        info = daemon.hyperctl("info", check=True).stdout
        section = info[info.index("Driver settings:") :]
        for line in (
            "  [qemu]",
            '  accelerator = "tcg"',
            "  stop_timeout = 10.0",
            "  template = true",
            "  [user]",
            '  host_ip = "127.0.0.1"',
            "  [oci]",
            '  insecure_registries = ["lan:5000"]',
        ):
            assert line in section.splitlines(), line
        settings = daemon.api("GET", "/info")["settings"]
        assert settings["qemu"]["binary"] == "qemu-system-x86_64"
        assert set(settings) == {"qemu", "user", "oci"}
    finally:
        daemon.cleanup()


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ("[bridge]\nsubnett = 1\n", "bridge.subnett: Extra inputs are not permitted"),
        (
            "[cloud-hypervisor]\nstop_timeout = -1\n",
            "cloud-hypervisor.stop_timeout: Input should be greater than or equal to 0",
        ),
    ],
)
def test_hyperd_refuses_a_mistake_in_any_drivers_table(table, error):
    daemon = Hyperd(config=table)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "hypercontainer.api.server"],
            env=daemon.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1
        assert done.stderr == f"hyperd: config ({daemon.config_file}): {error}\n"
    finally:
        daemon.cleanup()

"""hyperctl tag, push, login and logout against a real registry, as a user types them."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.support.daemon import HYPERCTL
from tests.support.registry import Registry, free_port

pytestmark = pytest.mark.registry


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    registry = Registry.start(tmp_path_factory.mktemp("registry"), auth="htpasswd")
    yield registry
    registry.stop()


def login(hyperd, registry: Registry) -> subprocess.CompletedProcess:
    return hyperd.hyperctl(
        "login",
        "-u",
        registry.username,
        "--password-stdin",
        registry.address,
        stdin=registry.password + "\n",
        check=True,
    )


def on_a_terminal(hyperd, *args: str) -> tuple[int, str]:
    """Run hyperctl with its stderr on a pseudo-terminal; (exit code, what the screen got)."""
    master, slave = os.openpty()
    try:
        process = subprocess.Popen(
            [*HYPERCTL, *args],
            env=hyperd.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=slave,
        )
        os.close(slave)
        screen = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal closed: hyperctl is gone
                break
            if not chunk:
                break
            screen += chunk
        return process.wait(timeout=120), screen.decode(errors="replace")
    finally:
        os.close(master)


def test_tag_push_and_logout(hyperd, registry):
    name = f"{registry.address}/team/busybox"
    hyperd.hyperctl("tag", "busybox", f"{name}:1.0", check=True)
    listed = hyperd.hyperctl("images", check=True).stdout
    assert f"{name}  " in listed and "1.0" in listed

    denied = hyperd.hyperctl("push", f"{name}:1.0")
    assert denied.returncode == 1
    assert denied.stderr.startswith(
        f"hyperctl ERROR: push to {name}: access denied by {registry.address}"
    )
    assert denied.stderr.count("\n") == 1

    assert login(hyperd, registry).stdout == "Login Succeeded\n"
    pushed = hyperd.hyperctl("push", f"{name}:1.0", check=True)
    assert pushed.stderr.startswith("1 layer(s) pushed (")
    assert pushed.stdout.startswith(f"Successfully pushed {name}:1.0 (sha256:")
    digest = pushed.stdout.split("(")[1].rstrip(")\n")
    inspected = subprocess.run(
        [
            "skopeo",
            "inspect",
            "--tls-verify=false",
            "--creds",
            f"{registry.username}:{registry.password}",
            f"docker://{name}:1.0",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert json.loads(inspected.stdout)["Digest"] == digest

    # Pushed again to another repository on a terminal: its layer is mounted, not sent.
    code, screen = on_a_terminal(hyperd, "push", f"{name}:1.0", f"{registry.address}/other/bb")
    assert code == 0 and "Mounted from team/busybox" in screen

    logout = hyperd.hyperctl("logout", registry.address, check=True)
    assert logout.stdout == f"Removing login credentials for {registry.address}\n"
    again = hyperd.hyperctl("logout", registry.address, check=True)
    assert again.stdout == f"Not logged in to {registry.address}\n"
    pull = hyperd.hyperctl("pull", f"{name}@{digest}")
    assert pull.returncode == 1 and "access denied" in pull.stderr  # logged out indeed


def test_push_to_nowhere_is_one_line(hyperd):
    dead = f"127.0.0.1:{free_port()}"
    result = hyperd.hyperctl("push", "busybox", f"{dead}/x/y:1")
    assert (result.returncode, result.stderr) == (
        1,
        f"hyperctl ERROR: cannot reach registry {dead}: connection refused\n",
    )


def test_tag_errors_are_one_line_and_change_nothing(hyperd):
    before = hyperd.hyperctl("images", check=True).stdout
    for args, expected in (
        (("tag", "missing:1", "x:1"), "not found locally"),
        (("tag", "busybox", "x@sha256:" + "0" * 64), "digest is fixed"),
        (("tag", "busybox", "UPPER/Case"), "invalid image reference"),
    ):
        result = hyperd.hyperctl(*args)
        assert result.returncode == 1 and expected in result.stderr
        assert result.stderr.count("\n") == 1
    assert hyperd.hyperctl("images", check=True).stdout == before

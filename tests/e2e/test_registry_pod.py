"""An image pushed by skopeo to a real registry, pulled by hyperctl, run in a VM.

The image's second layer adds a file, whites out an applet and makes a
directory opaque: the container must see exactly what the image says.
"""

import pytest

from tests.support import imagebuild
from tests.support.daemon import Hyperd
from tests.support.registry import Registry

pytestmark = [pytest.mark.vm, pytest.mark.registry]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("registry")
    registry = Registry.start(workdir, auth="htpasswd")
    try:
        layout = imagebuild.write_layout(workdir / "layout", {"two": imagebuild.two_layers()})
        registry.push(layout, "two", "team/two:1.0")
        yield registry
    finally:
        registry.stop()


def test_login_pull_and_run_a_layered_image(registry):
    daemon = Hyperd().start()
    image = f"{registry.address}/team/two:1.0"
    try:
        denied = daemon.hyperctl("pull", image)
        assert denied.returncode == 1 and denied.stderr.startswith("hyperctl ERROR: ")
        assert daemon.hyperctl("images", "-q").stdout.strip() == ""

        wrong = daemon.hyperctl(
            "login", "-u", registry.username, "--password-stdin", registry.address, stdin="wrong\n"
        )
        assert wrong.returncode == 1
        login = daemon.hyperctl(
            "login",
            "-u",
            registry.username,
            "--password-stdin",
            registry.address,
            stdin=registry.password + "\n",
            check=True,
        )
        assert login.stdout == "Login Succeeded\n"
        daemon.hyperctl("pull", image, check=True)
        assert (daemon.state_root / "images").stat().st_mode & 0o077 == 0

        # The image's own entrypoint and cmd: cat /hello.txt from the second layer.
        ran = daemon.hyperctl("run", "--rm", image, check=True)
        assert ran.stdout == "hello from layer two\n"
        seen = daemon.hyperctl(
            "run",
            "--rm",
            "--entrypoint",
            "",
            image,
            "sh",
            "-c",
            "pwd; ls /usr/sbin; test -e /bin/vi && echo vi-present || echo vi-gone;"
            " test -e /bin/ls && echo ls-present",
            check=True,
        ).stdout.split()
        assert seen == ["/home/user", "only-this", "vi-gone", "ls-present"]
    finally:
        daemon.cleanup()

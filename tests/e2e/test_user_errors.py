"""Errors in the user's terms: one line naming what the user named, nothing half-done."""

import socket

import pytest

from tests.support.daemon import announced_pod, rows
from tests.support.registry import free_port, free_ports

SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]


def one_error(result) -> str:
    assert result.returncode == 1, result
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("hyperctl ERROR: ")
    assert "Traceback" not in result.stderr
    return result.stderr.removeprefix("hyperctl ERROR: ").rstrip("\n")


def test_pull_from_a_registry_that_cannot_be_reached(hyperd):
    dead = f"127.0.0.1:{free_port()}"
    error = one_error(hyperd.hyperctl("pull", f"{dead}/team/app:1"))
    assert error == f"cannot reach registry {dead}: connection refused"


def test_save_to_a_path_that_cannot_be_written(hyperd, tmp_path):
    error = one_error(hyperd.hyperctl("save", "-o", "/nonexistent-dir/x.tar", "busybox"))
    assert error == "cannot write /nonexistent-dir/x.tar: No such file or directory"
    error = one_error(hyperd.hyperctl("save", "-o", str(tmp_path), "busybox"))
    assert error == f"cannot write {tmp_path}: it is a directory"
    assert list(tmp_path.iterdir()) == []


def test_load_of_a_bad_file_names_that_file(hyperd, tmp_path):
    bad = tmp_path / "not-an-image.tar"
    bad.write_bytes(b"garbage, not a tar\n" * 100)
    error = one_error(hyperd.hyperctl("load", "-i", str(bad)))
    assert error.startswith(f"{bad}: not a valid archive")
    assert str(hyperd.state_root) not in error and "transfers" not in error


@pytest.mark.vm
def test_ports_add_takes_ranges_and_is_all_or_nothing(hyperd):
    pod = announced_pod(
        hyperd.hyperctl("run", "-d", "busybox", *SLEEPER, check=True, timeout=240).stdout
    )
    try:
        first, second = free_port(), free_ports(2)
        with socket.socket() as busy:  # a host port someone else holds
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            taken = busy.getsockname()[1]
            error = one_error(
                hyperd.hyperctl("ports", "add", pod, f"{first}:80", f"{taken}-{taken}:81-81")
            )
            assert str(taken) in error
        listed = hyperd.hyperctl("ports", "ls", pod, check=True).stdout
        assert rows(listed) == []  # the first mapping was undone with the second's failure

        ranged = f"127.0.0.1:{first}:80/tcp"
        hyperd.hyperctl("ports", "add", pod, ranged, f"{second}-{second + 1}:81-82", check=True)
        mapped = {tuple(row) for row in rows(hyperd.hyperctl("ports", "ls", pod).stdout)}
        assert mapped == {
            (f"127.0.0.1:{first}", "80", "tcp"),
            (f"127.0.0.1:{second}", "81", "tcp"),
            (f"127.0.0.1:{second + 1}", "82", "tcp"),
        }
        error = one_error(hyperd.hyperctl("ports", "add", pod, "90-91:80"))
        assert error == "port mapping '90-91:80': the host and container ranges differ in length"
    finally:
        hyperd.hyperctl("rm", pod)

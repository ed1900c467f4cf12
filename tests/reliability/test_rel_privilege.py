"""Who may reach hyperd: its socket is 0600 (0660 for a configured socket group) and its
state and run directories 0700, so another user of the machine can neither list nor
drive the pods, nor read the store.

The other users are made by the test (useradd) and removed after it. Their
attempts run in a forked child that has dropped to their uid and groups: the
test's own Python is under /root, which they could not read, so hyperctl's modules are
imported before the fork.
"""

from __future__ import annotations

import contextlib
import grp
import io
import os
import pickle
import pwd
import secrets
import socket
import stat
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# Imported here, before any fork: the other users cannot read /root, where Python lives.
from hypercontainer import errors  # noqa: F401 - imported by hyperctl when it fails
from hypercontainer.cli import client, images, pods, progress, system, tables  # noqa: F401
from hypercontainer.cli.main import main

from tests.support.daemon import Hyperd

pytestmark = pytest.mark.root


class Accounts:
    """System users and groups made for one test, deleted after it."""

    def __init__(self) -> None:
        self.users: list[str] = []
        self.groups: list[str] = []

    def user(self, *groups: str) -> pwd.struct_passwd:
        name = f"hcrel{secrets.token_hex(3)}"
        extra = ["-G", ",".join(groups)] if groups else []
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                *extra,
                name,
            ],
            check=True,
        )
        self.users.append(name)
        return pwd.getpwnam(name)

    def group(self) -> str:
        name = f"hcrelg{secrets.token_hex(3)}"
        subprocess.run(["groupadd", "--system", name], check=True)
        self.groups.append(name)
        return name

    def remove(self) -> None:
        for name in self.users:
            subprocess.run(["userdel", name], check=False)
        for name in self.groups:
            subprocess.run(["groupdel", name], check=False)
        assert not [u for u in self.users if _exists(pwd.getpwnam, u)]
        assert not [g for g in self.groups if _exists(grp.getgrnam, g)]


@pytest.fixture
def accounts() -> Iterator[Accounts]:
    if os.geteuid() != 0:
        pytest.skip("making users needs root")
    made = Accounts()
    yield made
    made.remove()


def _exists(lookup: Callable, name: str) -> bool:
    try:
        lookup(name)
        return True
    except KeyError:
        return False


def as_user(account: pwd.struct_passwd, work: Callable[[], Any]) -> Any:
    """work() in a child process running as `account` (its uid, gid and groups)."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop privileges for good, then try
        os.close(reader)
        try:
            groups = [g.gr_gid for g in grp.getgrall() if account.pw_name in g.gr_mem]
            os.setgroups(groups)
            os.setgid(account.pw_gid)
            os.setuid(account.pw_uid)
            result = ("ok", work())
        except BaseException as e:  # noqa: BLE001 - everything goes back to the test
            result = ("error", f"{type(e).__name__}: {e}")
        with os.fdopen(writer, "wb") as out:
            pickle.dump(result, out)
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as source:
        outcome = pickle.load(source)
    os.waitpid(pid, 0)
    return outcome


def connect(path: str) -> str:
    with socket.socket(socket.AF_UNIX) as probe:
        probe.connect(path)
    return "connected"


def hyperctl(config: str, *args: str) -> tuple[int, str, str]:
    """hyperctl's own main(), in this process, with its output captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--config", config, *args])
    return code, out.getvalue(), err.getvalue()


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def daemon(daemons, tmp_path) -> Hyperd:
    """A hyperd holding a pod, whose directory above its roots lets everybody through:
    only the modes hyperd gives its own files protect them."""
    made = daemons(busybox=True)
    os.chmod(made.root, 0o755)
    (tmp_path / "victim.json").write_text('{"id": "victim", "containers": [{"image": "busybox"}]}')
    made.hyperctl("create", "-p", str(tmp_path / "victim.json"), check=True)
    return made


def test_socket_and_state_are_private(daemon):
    assert mode(daemon.socket) == 0o600 and os.lstat(daemon.socket).st_uid == 0
    for directory in (daemon.state_root, daemon.run_root):
        assert mode(directory) == 0o700, directory
    assert mode(daemon.state_root / "images") == 0o700


def test_another_user_can_neither_reach_nor_read(daemon, accounts):
    stranger = accounts.user()
    config = str(daemon.config_file)

    assert as_user(stranger, lambda: connect(str(daemon.socket)))[1].startswith("PermissionError")
    assert as_user(stranger, lambda: os.listdir(daemon.state_root))[1].startswith("PermissionError")
    assert as_user(stranger, lambda: open(daemon.state_root / "state.db", "rb").read(1))[  # noqa: SIM115 - the open is what fails
        1
    ].startswith("PermissionError")
    for args in (("list",), ("rm", "victim"), ("start", "victim")):
        verdict, answer = as_user(stranger, lambda a=args: hyperctl(config, *a))
        assert verdict == "ok", answer
        code, out, err = answer
        assert code == 1 and "victim" not in out, (args, out, err)
        # One line saying why, rather than trying to start a second daemon.
        assert err == f"hyperctl ERROR: permission denied on hyperd's socket {daemon.socket}\n"

    # Root still sees the pod, untouched.
    code, out, err = hyperctl(config, "list")
    assert code == 0 and "victim" in out and "pending" in out, err


@pytest.fixture
def group_daemon(daemons, accounts) -> tuple[Hyperd, str]:
    group = accounts.group()
    daemon = daemons(config=f'socket_group = "{group}"\n', busybox=False)
    os.chmod(daemon.root, 0o755)
    return daemon, group


def test_a_socket_group_owns_the_socket_and_no_one_else_gets_in(group_daemon, accounts):
    daemon, group = group_daemon
    info = os.lstat(daemon.socket)
    assert mode(daemon.socket) == 0o660 and info.st_gid == grp.getgrnam(group).gr_gid
    assert mode(daemon.state_root) == 0o700  # the store stays root's alone
    outcome = as_user(accounts.user(), lambda: connect(str(daemon.socket)))
    assert outcome[1].startswith("PermissionError"), outcome


def test_a_socket_group_member_drives_hyperd(group_daemon, accounts):
    daemon, group = group_daemon
    member = accounts.user(group)
    assert as_user(member, lambda: connect(str(daemon.socket))) == ("ok", "connected")
    verdict, (code, out, err) = as_user(member, lambda: hyperctl(str(daemon.config_file), "list"))
    assert code == 0 and out.startswith("POD ID"), (out, err)

"""A container's user, resolved against its own /etc/passwd and /etc/group."""

from __future__ import annotations

import pytest
from hypercontainer.guest.agent.errors import Failure
from hypercontainer.guest.agent.users import resolve


@pytest.fixture
def rootfs(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "# a comment\n"
        "www:x:33:33:www:/var/www:/bin/false\n"
        "app:x:1000:1000::/home/app:/bin/sh\n"
    )
    (etc / "group").write_text("root:x:0:\nwww:x:33:\nstaff:x:50:app,www\napp:x:1000:\n")
    return str(tmp_path)


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("", (0, 0, [], "/root")),
        ("app", (1000, 1000, [50], "/home/app")),
        ("1000", (1000, 1000, [50], "/home/app")),
        ("www:staff", (33, 50, [50], "/var/www")),
        ("app:33", (1000, 33, [50], "/home/app")),
        ("1234", (1234, 0, [], "/")),  # unknown uid: allowed, group root
        ("1234:77", (1234, 77, [], "/")),
    ],
)
def test_user_forms(rootfs, spec, expected):
    user = resolve(rootfs, spec)
    assert (user.uid, user.gid, user.groups, user.home) == expected


def test_additional_groups_by_name_or_number(rootfs):
    assert resolve(rootfs, "app", ["www", "99", "staff"]).groups == [50, 33, 99]


@pytest.mark.parametrize(
    "spec, message",
    [
        ("ghost", "unable to find user ghost: no matching entries in passwd file"),
        ("app:ghosts", "unable to find group ghosts: no matching entries in group file"),
        ("99999999999", "id 99999999999 out of range"),
    ],
)
def test_unknown_names_are_errors(rootfs, spec, message):
    with pytest.raises(Failure, match=message):
        resolve(rootfs, spec)


def test_image_without_passwd(tmp_path):
    assert resolve(str(tmp_path), "").uid == 0
    with pytest.raises(Failure, match="unable to find user app"):
        resolve(str(tmp_path), "app")

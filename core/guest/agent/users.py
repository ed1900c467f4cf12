"""A container's user, resolved against the container's own /etc/passwd and /etc/group.

Accepted forms, as a container engine accepts them: "" (root), "name", "uid",
"name:group", "uid:gid", "name:gid", "uid:group".
"""

from __future__ import annotations

from . import safepath
from .errors import Failure

DATABASE_LIMIT = 4 << 20


class User:
    def __init__(self, uid: int, gid: int, groups: list[int], home: str) -> None:
        self.uid = uid
        self.gid = gid
        self.groups = groups  # supplementary group ids
        self.home = home

    def __repr__(self) -> str:
        return f"User(uid={self.uid}, gid={self.gid}, groups={self.groups}, home={self.home!r})"


def _database(rootfs: str, path: str, fields: int) -> list[list[str]]:
    try:
        data, _ = safepath.read_file(rootfs, path, 0, DATABASE_LIMIT)
    except (OSError, safepath.PathError):
        return []
    rows = []
    for line in data.decode(errors="replace").splitlines():
        if line.strip() and not line.startswith("#"):
            row = line.split(":")
            if len(row) >= fields:
                rows.append(row)
    return rows


def _number(text: str) -> int | None:
    if text.isdigit() and text.isascii():
        value = int(text)
        if value < 2**32 - 1:
            return value
        raise Failure(f"id {text} out of range")
    return None


def resolve(rootfs: str, spec: str, additional_groups: list[str] | None = None) -> User:
    name_or_uid, _, group = (spec or "").partition(":")
    passwd = _database(rootfs, "/etc/passwd", 7)
    groups = _database(rootfs, "/etc/group", 4)

    entry = None
    uid = _number(name_or_uid) if name_or_uid else 0
    if uid is None:
        entry = next((row for row in passwd if row[0] == name_or_uid), None)
        if entry is None:
            raise Failure(f"unable to find user {name_or_uid}: no matching entries in passwd file")
    else:
        entry = next((row for row in passwd if _number(row[2]) == uid), None)

    if entry is not None:
        uid, gid, home, user_name = _number(entry[2]), _number(entry[3]), entry[5], entry[0]
        if uid is None or gid is None:
            raise Failure(f"malformed passwd entry for user {entry[0]}")
    else:
        gid, home, user_name = 0, "/", None

    if group:
        gid = _group_id(group, groups)

    supplementary: list[int] = []
    if user_name is not None:
        for row in groups:
            if user_name in row[3].split(",") and (number := _number(row[2])) is not None:
                supplementary.append(number)
    for extra in additional_groups or []:
        supplementary.append(_group_id(extra, groups))
    unique = [g for index, g in enumerate(supplementary) if g not in supplementary[:index]]
    assert uid is not None  # a name was looked up above, or refused
    return User(uid, gid, unique, home or "/")


def _group_id(group: str, groups: list[list[str]]) -> int:
    number = _number(group)
    if number is not None:
        return number
    for row in groups:
        if row[0] == group and (number := _number(row[2])) is not None:
            return number
    raise Failure(f"unable to find group {group}: no matching entries in group file")

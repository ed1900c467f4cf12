"""The create_container config: checked field by field, one-line errors, defaults filled in."""

from __future__ import annotations

import pytest
from hypercontainer.guest.agent.args import Args
from hypercontainer.guest.agent.errors import Failure
from hypercontainer.guest.agent.handlers import container_spec


def spec(**overrides) -> dict:
    config = {"id": "c1", "layers": ["sha256/aa", "sha256/bb"], "process": {"args": ["sh"]}}
    config.update(overrides)
    return container_spec(Args(config, "config"))


def test_defaults():
    assert spec() == {
        "id": "c1",
        "rootfs": None,
        "layers": ["sha256/aa", "sha256/bb"],
        "opaque": {},
        "process": {
            "args": ["sh"],
            "env": [],
            "cwd": "/",
            "user": "",
            "additional_groups": [],
            "terminal": False,
            "stdin": False,
        },
        "hostname": None,
        "readonly_rootfs": False,
        "mounts": [],
        "files": [],
        "sysctl": {},
        "rlimits": [],
    }


def test_mounts_files_rlimits_are_normalised():
    result = spec(
        mounts=[
            {"type": "share", "tag": "hc_vol_0", "destination": "/data/"},
            {"type": "empty", "name": "cache", "destination": "/c", "readonly": True},
        ],
        files=[{"path": "/etc//x", "content_b64": "eA=="}],
        rlimits=[{"type": "nofile", "soft": 1024, "hard": 4096}],
    )
    assert result["mounts"] == [
        {"type": "share", "tag": "hc_vol_0", "path": "", "destination": "/data", "readonly": False},
        {"type": "empty", "name": "cache", "destination": "/c", "readonly": True},
    ]
    assert result["files"] == [
        {"path": "/etc/x", "content_b64": "eA==", "mode": 0o644, "user": "", "group": ""}
    ]
    assert result["rlimits"] == [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096}]


def test_a_host_root_directory_binds_and_tmpfs_are_normalised():
    result = spec(
        layers=[],
        rootfs={"tag": "hc_pod", "path": "c1/rootfs"},
        mounts=[
            {
                "type": "share",
                "tag": "hc_pod",
                "path": "c1/binds/0",
                "destination": "/etc/hosts",
                "readonly": True,
            },
            {"type": "tmpfs", "destination": "/run", "options": ["size=64m", "nosuid"]},
        ],
    )
    assert result["rootfs"] == {"tag": "hc_pod", "path": "c1/rootfs"}
    assert result["mounts"] == [
        {
            "type": "share",
            "tag": "hc_pod",
            "path": "c1/binds/0",
            "destination": "/etc/hosts",
            "readonly": True,
        },
        {
            "type": "tmpfs",
            "destination": "/run",
            "readonly": False,
            "options": ["size=64m", "nosuid"],
        },
    ]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"id": "../x"}, "config: 'id' '../x' is not a valid id"),
        ({"id": 5}, "config: field 'id' must be a string"),
        ({"layers": ["a/../../b"]}, "config: invalid layer directory 'a/../../b'"),
        ({"layers": ["/abs"]}, "config: invalid layer directory '/abs'"),
        ({"layers": ["a:b"]}, "config: invalid layer directory 'a:b'"),
        ({"process": {"args": []}}, "config.process: args must not be empty"),
        ({"process": {"args": ["a\0b"]}}, "field 'args' must be a list of strings"),
        ({"process": {"args": ["sh"], "env": ["NOEQUALS"]}}, "'NOEQUALS' is not NAME=value"),
        ({"process": {"args": ["sh"], "cwd": "rel"}}, "cwd 'rel' must be an absolute path"),
        ({"process": {"args": ["sh"], "terminal": 1}}, "field 'terminal' must be true or false"),
        ({"hostname": "bad_host!"}, "invalid hostname 'bad_host!'"),
        (
            {"mounts": [{"type": "share", "tag": "t", "destination": "/"}]},
            "cannot mount a volume on /",
        ),
        ({"mounts": [{"type": "nfs", "destination": "/x"}]}, "unknown mount type 'nfs'"),
        (
            {"mounts": [{"type": "share", "tag": "t", "destination": "/a/../../etc"}]},
            "must be an absolute path without '..'",
        ),
        ({"mounts": ["x"]}, "config: mounts[0] must be an object"),
        ({"rootfs": {"tag": "hc_pod", "path": "../../etc"}}, "invalid path '../../etc'"),
        ({"rootfs": {"tag": "hc_pod", "path": "/abs"}}, "invalid path '/abs'"),
        ({"rootfs": {"tag": "hc_layers", "path": "x"}}, "hc_layers holds image layers"),
        (
            {"mounts": [{"type": "tmpfs", "destination": "/t", "options": ["exec,suid"]}]},
            "tmpfs option 'exec,suid' is not allowed",
        ),
        (
            {"mounts": [{"type": "tmpfs", "destination": "/t", "options": ["size=1g;rm"]}]},
            "tmpfs option 'size=1g;rm' is not allowed",
        ),
        (
            {"mounts": [{"type": "share", "tag": "hc_layers", "destination": "/l"}]},
            "hc_layers holds image layers, not a volume",
        ),
        ({"files": [{"path": "/x", "mode": 0o17777}]}, "field 'mode' must be between 0 and 4095"),
        ({"sysctl": {"kernel/../x": "1"}}, "invalid sysctl name"),
        ({"rlimits": [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]}, "unknown rlimit 'BOGUS'"),
        ({"rlimits": [{"type": "NOFILE", "soft": -1, "hard": 1}]}, "field 'soft' must be between"),
        ({"opaque": {"sha256/cc": ["/x"]}}, "opaque: 'sha256/cc' is not one of the layers"),
        ({"opaque": {"sha256/aa": ["x"]}}, "must list absolute paths without '..'"),
        ({"opaque": {"sha256/aa": ["/a/../.."]}}, "must list absolute paths without '..'"),
    ],
)
def test_bad_configs(overrides, message):
    with pytest.raises(Failure) as error:
        spec(**overrides)
    assert message in str(error.value)
    assert "\n" not in str(error.value)

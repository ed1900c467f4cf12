"""The agent's create_container request, from an image config and a container spec."""

import base64

import pytest
from hypercontainer.container_config import (
    agent_config,
    check_runnable,
    host_binds,
    mounts,
    volume_shares,
)
from hypercontainer.drivers import ImageConfig, ResolvedImage
from hypercontainer.errors import UserError
from hypercontainer.specload import parse_pod_spec

IMAGE = ResolvedImage(
    id="sha256:" + "1" * 64,
    reference="docker.io/library/app:1",
    layers=["sha256/a", "sha256/b"],
    config=ImageConfig(
        entrypoint=["/entry"],
        cmd=["serve"],
        env=["PATH=/bin", "A=image"],
        working_dir="/srv",
        user="app",
    ),
)


def config_for(container: dict, **pod):
    spec = parse_pod_spec({"containers": [{"image": "app:1", **container}], **pod})
    return agent_config("c" * 64, spec.containers[0], IMAGE, spec, "host1")


def test_docker_rules_for_the_process():
    assert config_for({})["process"]["args"] == ["/entry", "serve"]
    assert config_for({"command": ["x"]})["process"]["args"] == ["/entry", "x"]
    assert config_for({"entrypoint": ["/bin/sh"]})["process"]["args"] == ["/bin/sh"]
    process = config_for({"envs": [{"env": "A", "value": "mine"}], "workdir": "/w"})["process"]
    assert "A=mine" in process["env"] and "A=image" not in process["env"]
    assert process["env"][0] == "PATH=/bin"
    assert (process["cwd"], process["user"]) == ("/w", "app")


def test_no_command_anywhere_is_a_user_error():
    empty = ResolvedImage(id="sha256:" + "2" * 64, reference="x", layers=[], config=ImageConfig())
    spec = parse_pod_spec({"containers": [{"image": "x"}]})
    with pytest.raises(UserError, match="no command given"):
        agent_config("c" * 64, spec.containers[0], empty, spec, "h")


def test_volumes_files_and_limits(tmp_path):
    pod = {
        "volumes": [{"name": "data", "source": str(tmp_path)}, {"name": "scratch"}],
        "files": [{"name": "cfg", "encoding": "raw", "content": "hello"}],
    }
    request = config_for(
        {
            "volumes": [
                {"volume": "data", "path": "/data", "readOnly": True},
                {"volume": "scratch", "path": "/scratch"},
            ],
            "files": [{"filename": "cfg", "path": "/etc/app.conf", "perm": "0600"}],
            "ulimits": [{"name": "nofile", "soft": 10, "hard": 20}],
        },
        **pod,
    )
    assert request["mounts"] == [
        {"type": "share", "tag": "hc_vol_0", "destination": "/data", "readonly": True},
        {"type": "empty", "name": "scratch", "destination": "/scratch", "readonly": False},
    ]
    (file,) = request["files"]
    assert base64.b64decode(file["content_b64"]) == b"hello" and file["mode"] == 0o600
    assert request["rlimits"] == [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20}]
    assert request["layers"] == ["sha256/a", "sha256/b"]


def test_volume_sources_must_be_host_directories_or_files(tmp_path):
    missing = str(tmp_path / "no")
    spec = parse_pod_spec({"containers": [], "volumes": [{"name": "v", "source": missing}]})
    with pytest.raises(UserError, match="is neither a directory nor a file on the host"):
        check_runnable(spec)
    spec = parse_pod_spec({"volumes": [{"name": "v", "source": str(tmp_path)}]})
    (share,) = volume_shares(spec)
    assert (share.tag, share.host_path, share.readonly) == ("hc_vol_0", tmp_path, False)


def test_a_host_file_volume_is_refused_only_by_a_hyperd_that_is_not_root(tmp_path):
    (tmp_path / "hosts").write_text("x")
    spec = parse_pod_spec({"volumes": [{"name": "v", "source": str(tmp_path / "hosts")}]})
    with pytest.raises(UserError, match=r"host file .* is shared only by a hyperd running as root"):
        check_runnable(spec, hyperd_is_root=False)
    # hyperctl, run by a member of the socket group, checks for a root hyperd: no refusal.
    check_runnable(spec, hyperd_is_root=True)


def test_a_host_file_volume_is_a_bind_below_the_pod_share(tmp_path):
    (tmp_path / "hosts").write_text("x")
    spec = parse_pod_spec(
        {
            "volumes": [{"name": "v", "source": str(tmp_path / "hosts")}],
            "containers": [
                {"image": "busybox", "volumes": [{"volume": "v", "path": "/etc/hosts"}]}
            ],
        }
    )
    assert volume_shares(spec) == []  # a VM share is a directory: not the file's own
    (bind,) = host_binds(spec, spec.containers[0])
    assert (bind.source, bind.path, bind.read_only) == (
        str(tmp_path / "hosts"),
        "/etc/hosts",
        False,
    )
    assert mounts(spec, spec.containers[0], "c1") == [
        {
            "type": "share",
            "tag": "hc_pod",
            "path": "c1/binds/0",
            "destination": "/etc/hosts",
            "readonly": False,
        }
    ]


def test_a_host_root_directory_with_binds_and_tmpfs():
    spec = parse_pod_spec(
        {
            "containers": [
                {
                    "rootfs": "/run/containerd/task/x/rootfs",
                    "command": ["/bin/sh", "-c", "true"],
                    "user": {"name": "1000", "group": "1000", "additionalGroups": ["10"]},
                    "binds": [{"source": "/etc/k8s/hosts", "path": "/etc/hosts", "readOnly": True}],
                    "tmpfs": [{"path": "/run", "options": ["size=64m", "nosuid"]}],
                }
            ]
        }
    )
    config = agent_config("c" * 64, spec.containers[0], None, spec, "h")
    assert config["rootfs"] == {"tag": "hc_pod", "path": "c" * 64 + "/rootfs"}
    assert config["layers"] == [] and config["opaque"] == {}
    assert config["process"]["args"] == ["/bin/sh", "-c", "true"]
    assert (config["process"]["user"], config["process"]["additional_groups"]) == (
        "1000:1000",
        ["10"],
    )
    assert config["mounts"] == [
        {
            "type": "share",
            "tag": "hc_pod",
            "path": "c" * 64 + "/binds/0",
            "destination": "/etc/hosts",
            "readonly": True,
        },
        {"type": "tmpfs", "destination": "/run", "options": ["size=64m", "nosuid"]},
    ]


@pytest.mark.parametrize(
    "container, message",
    [
        ({"rootfs": "/r", "image": "busybox"}, "an image or a rootfs, not both"),
        ({"rootfs": "relative"}, "not an absolute path"),
        (
            {"rootfs": "/r", "binds": [{"source": "/a/../etc", "path": "/x"}]},
            "must not contain '..'",
        ),
        (
            {"rootfs": "/r", "tmpfs": [{"path": "/t", "options": ["exec,dev"]}]},
            "not a tmpfs option",
        ),
        (
            {"rootfs": "/r", "tmpfs": [{"path": "/t"}], "binds": [{"source": "/s", "path": "/t"}]},
            "mount path '/t' repeats binds\\[0\\]",
        ),
    ],
)
def test_host_root_directories_binds_and_tmpfs_are_checked(container, message):
    with pytest.raises(UserError, match=message):
        parse_pod_spec({"containers": [container]})

"""A bundle's OCI spec as hyperd's pod and container: what is honoured, what is refused."""

from __future__ import annotations

import pytest
from hypercontainer.shim import ocispec
from hypercontainer.shim.status import Code, RpcError
from hypercontainer.specload import parse_pod_spec

CRI_CONTAINER = {
    "process": {
        "args": ["sh", "-c", "exec app"],
        "env": ["PATH=/bin", "A=b=c"],
        "cwd": "/srv",
        "terminal": False,
        "user": {"uid": 1000, "gid": 1000, "additionalGids": [1000, 10]},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 1024}],
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "web",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts"},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue"},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs"},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"},
        {
            "destination": "/dev/shm",
            "type": "bind",
            "source": "/run/c/shm",
            "options": ["rbind", "ro"],
        },
        {
            "destination": "/etc/hosts",
            "type": "bind",
            "source": "/var/c/hosts",
            "options": ["rbind", "rprivate", "rw"],
        },
        {"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind", "ro"]},
        {
            "destination": "/run",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "mode=755", "size=65536k", "rprivate"],
        },
    ],
    "linux": {
        "sysctl": {"net.ipv4.ip_forward": "1"},
        "namespaces": [{"type": "pid"}, {"type": "network", "path": "/var/run/netns/cni-1"}],
    },
    "annotations": {
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.sandbox-id": "s" * 64,
        "io.kubernetes.cri.container-name": "app",
    },
}


def test_a_cri_container_becomes_a_hyperd_container_hyperd_accepts() -> None:
    body = ocispec.container_spec(CRI_CONTAINER, "c" * 64, "k8s.io", "/b/rootfs")
    assert body["name"].startswith("app-") and len(body["name"]) == 12
    assert (body["rootfs"], body["entrypoint"], body["command"]) == (
        "/b/rootfs",
        [],
        ["sh", "-c", "exec app"],
    )
    assert body["envs"] == [{"env": "PATH", "value": "/bin"}, {"env": "A", "value": "b=c"}]
    assert (body["workdir"], body["readOnly"], body["tty"]) == ("/srv", True, False)
    assert body["user"] == {"name": "1000", "group": "1000", "additionalGroups": ["10"]}
    assert body["ulimits"] == [{"name": "nofile", "soft": 1024, "hard": 4096}]
    assert body["sysctl"] == {"net.ipv4.ip_forward": "1"}
    assert body["binds"] == [
        {"source": "/var/c/hosts", "path": "/etc/hosts", "readOnly": False},
        {"source": "/srv/data", "path": "/data", "readOnly": True},
    ]
    assert body["tmpfs"] == [{"path": "/run", "options": ["nosuid", "mode=755", "size=65536k"]}]
    parse_pod_spec({"containers": [body]})  # hyperd's own rules accept it


def test_grouping_follows_the_cri_annotations() -> None:
    assert ocispec.grouping(CRI_CONTAINER, "c1") == ocispec.Grouping("s" * 64, False)
    assert ocispec.grouping({"process": {}}, "lone") == ocispec.Grouping("lone", True)
    sandbox = {"annotations": {"io.kubernetes.cri.container-type": "sandbox"}}
    assert ocispec.grouping(sandbox, "s1") == ocispec.Grouping("s1", True)
    with pytest.raises(RpcError, match="names no io.kubernetes.cri.sandbox-id"):
        ocispec.grouping({"annotations": {"io.kubernetes.cri.container-type": "container"}}, "x")


def test_a_sandbox_is_a_pod_named_and_labelled_after_the_kubernetes_pod() -> None:
    spec = {
        "hostname": "web",
        "annotations": {
            "io.kubernetes.cri.sandbox-name": "web",
            "io.kubernetes.cri.sandbox-namespace": "prod",
            "io.hypercontainer.pod.memory": "512",
            "io.hypercontainer.pod.vcpu": "2",
        },
    }
    body, pod_id = ocispec.pod_spec(spec, "k8s.io", "s" * 64)
    assert pod_id.startswith("web.prod-") and body["id"] == pod_id
    assert body["labels"]["io.kubernetes.pod.namespace"] == "prod"
    assert body["labels"]["io.kubernetes.pod.name"] == "web"
    assert (body["hostname"], body["resource"]) == ("web", {"vcpu": 2, "memory": 512})
    parse_pod_spec(body)
    other, _ = ocispec.pod_spec(spec, "other-namespace", "s" * 64)
    assert other["id"] != pod_id  # the same task id in two containerd namespaces


def test_the_network_namespace_is_the_spec_s() -> None:
    assert ocispec.network_namespace(CRI_CONTAINER) == "/var/run/netns/cni-1"
    assert ocispec.network_namespace({"linux": {"namespaces": [{"type": "pid"}]}}) is None
    assert ocispec.network_namespace({"linux": {"namespaces": [{"type": "network"}]}}) is None


@pytest.mark.parametrize(
    "change, message",
    [
        ({"process": {"args": []}}, "process.args must be a non-empty list"),
        ({"process": {"args": ["sh"], "env": ["NOEQUALS"]}}, "is not NAME=value"),
        ({"process": {"args": ["sh"], "user": {"uid": -1}}}, "non-negative"),
        ({"process": {"args": ["sh"], "rlimits": [{"type": "RLIMIT_BOGUS"}]}}, "guest can apply"),
        (
            {"mounts": [{"destination": "/x", "type": "nfs", "source": "h:/e"}]},
            "type 'nfs' is not supported",
        ),
        (
            {"mounts": [{"destination": "/x", "type": "bind", "source": "relative"}]},
            "source must be an absolute path",
        ),
        ({"mounts": [{"type": "bind"}]}, "has no destination"),
    ],
)
def test_what_the_guest_cannot_do_is_refused_by_name(change, message) -> None:
    spec = {"process": {"args": ["sh"]}, **change}
    with pytest.raises(RpcError) as refused:
        ocispec.container_spec(spec, "t", "default", "/r")
    assert refused.value.code == Code.INVALID_ARGUMENT and message in refused.value.message


def test_a_bundle_s_spec_is_read_with_limits(tmp_path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(RpcError, match="is not JSON"):
        ocispec.read_spec(str(tmp_path))
    (tmp_path / "config.json").write_text(" " * (ocispec.MAX_SPEC + 1))
    with pytest.raises(RpcError, match="larger than"):
        ocispec.read_spec(str(tmp_path))
    with pytest.raises(RpcError, match="No such file"):
        ocispec.read_spec(str(tmp_path / "missing"))

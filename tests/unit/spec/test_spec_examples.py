"""Every example pod file of the original hyperd is accepted or refused precisely."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from hypercontainer.errors import UserError
from hypercontainer.specload import load_pod_file, load_pod_spec

from tests.support.podfiles import ACCEPTED

KUBERNETES = "this is the Kubernetes pod form (apiVersion, kind, spec): run it with -k FILE"
REFUSED = {
    "insert-file.pod": "files[1].uri: http URIs are not fetched;"
    " only local file:// URIs are (or give content)",
    "kubernetes_tomcat.pod": KUBERNETES,
    "kubernetes_ubuntu_restart.pod": KUBERNETES,
    "port-mapping-in-sandbox.pod": "portmappingWhiteLists:"
    " port mapping white lists are not supported",
}


def test_every_example_is_covered(examples: Path) -> None:
    names = {p.name for p in examples.iterdir() if p.suffix in (".pod", ".yml")}
    assert names == set(ACCEPTED) | set(REFUSED)


@pytest.mark.parametrize("name", ACCEPTED)
def test_accepted(examples: Path, name: str) -> None:
    spec = load_pod_file(examples / name)
    assert spec.containers


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_with_reason(examples: Path, name: str) -> None:
    with pytest.raises(UserError) as caught:
        load_pod_file(examples / name)
    assert str(caught.value) == f"{examples / name}: {REFUSED[name]}"


def test_file_mapping(examples: Path) -> None:
    spec = load_pod_file(examples / "file-mapping.pod")
    assert spec.id == "test-file-mapping"
    assert spec.resource.memory == 256 and spec.resource.vcpu == 1
    (volume,) = spec.volumes
    assert (volume.name, volume.source, volume.format) == ("resolv.conf", "/etc/resolv.conf", "vfs")
    (ref,) = spec.containers[0].volumes
    assert (ref.volume, ref.path, ref.read_only) == ("resolv.conf", "/etc/resolv.conf", False)
    assert spec.containers[0].tty  # the pod-level tty is the containers' default


def test_multi_container_restart_policies(examples: Path) -> None:
    spec = load_pod_file(examples / "multi-container.pod")
    assert [c.name for c in spec.containers] == ["web", "top", "vmstat"]
    assert [c.restart_policy for c in spec.containers] == ["never", "never", "always"]
    assert spec.containers[2].command == ["/usr/bin/vmstat", "1", "10"]
    assert spec.containers[1].workdir == "/"


def test_nfs_volume_without_names(examples: Path) -> None:
    spec = load_pod_file(examples / "nfs-volume.pod")
    assert spec.id is None and spec.containers[0].name is None
    (volume,) = spec.volumes
    assert (volume.source, volume.format, volume.fstype) == ("192.168.80.72:/export", "nas", "nfs")
    assert spec.resource.memory == 1024


def test_port_mapping_lowercase_keys(examples: Path) -> None:
    spec = load_pod_file(examples / "port-mapping.pod")
    (mapping,) = spec.portmappings
    assert (mapping.container_port, mapping.host_port, mapping.protocol) == (
        "1300-1310",
        "3000-3010",
        "tcp",
    )
    pairs = list(zip(mapping.host_ports, mapping.container_ports, strict=True))
    assert pairs[0] == (3000, 1300) and pairs[-1] == (3010, 1310)
    assert len(mapping.host_ports) == 11


def test_attach_files_content(examples: Path) -> None:
    spec = load_pod_file(examples / "ubuntu-attach-files.pod")
    (file,) = spec.files
    assert file.data == b"[mysqld]\ninnodb_use_native_aio = FALSE"
    (ref,) = spec.containers[0].files
    assert ref.destination == "/etc/mysql/conf.d/disable-aio.cnf"
    assert ref.mode == 0o777


def test_user(examples: Path) -> None:
    user = load_pod_file(examples / "ubuntu-with-user.pod").containers[0].user
    assert user is not None
    assert (user.name, user.group, user.additional_groups) == ("nobody", "13", ["cdrom", "8"])


def test_with_volume(examples: Path) -> None:
    spec = load_pod_file(examples / "with-volume.pod")
    log, tmp = spec.volumes
    assert log.is_empty and log.format == ""
    assert not tmp.is_empty and (tmp.source, tmp.format) == ("/tmp", "vfs")
    assert [len(c.volumes) for c in spec.containers] == [2, 2]


def test_yaml_names_the_pod_with_name(examples: Path) -> None:
    spec = load_pod_file(examples / "ubuntu.yml")
    assert spec.id == "process-yaml-file-ubuntu"
    assert spec.resource.vcpu == 1 and spec.resource.memory == 128  # memory defaulted
    assert spec.files == [] and spec.volumes == []  # `files:` is null in the YAML
    assert spec.containers[0].tty


def test_insert_file_without_client_side_reading(examples: Path) -> None:
    # What hyperd does: nothing reads a URI, so the first one is refused.
    text = (examples / "insert-file.pod").read_text()
    with pytest.raises(UserError) as caught:
        load_pod_spec(text, source="insert-file.pod")
    assert str(caught.value) == (
        "insert-file.pod: files[0].uri: hyperd reads no URIs;"
        " hyperctl inlines file:// and http(s) URIs as content (and 1 more problem)"
    )


def test_insert_file_with_local_uris(examples: Path, tmp_path: Path) -> None:
    """With the remote logo replaced by a local file, hyperctl inlines both URIs."""
    (tmp_path / "resolv.conf").write_text("nameserver 192.0.2.1\n")
    (tmp_path / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    text = (examples / "insert-file.pod").read_text()
    text = text.replace("file:///etc/resolv.conf", f"file://{tmp_path}/resolv.conf")
    text = text.replace("http://7xj84t.com1.z0.glb.clouddn.com/test/logo.png", "logo.png")
    pod_file = tmp_path / "insert-file.pod"
    pod_file.write_text(text)
    spec = load_pod_file(pod_file)
    files = {f.name: f for f in spec.files}
    assert files["resolv.conf"].data == b"nameserver 192.0.2.1\n"
    assert files["resolv.conf"].uri == "" and files["resolv.conf"].encoding == "base64"
    assert files["logo"].data == b"\x89PNG\r\n\x1a\n\x00\xff"
    assert files["data"].data == b"" and files["data2"].data == b"hello,\r\nhyper!\r\n"
    refs = {r.filename: r for r in spec.containers[0].files}
    assert refs["resolv.conf"].destination == "/root/test/resolv.conf"
    assert refs["logo"].destination == "/root/test/logo.png"
    # The deliberately corrupt base64: what the original's Go decoder made of it (its
    # own integration test expects this file's md5 to be 5c9b8281...).
    assert files["corrupt"].decoded() == (
        b'V\xc6\xc6\xf2\xc0\xd0\xa6\x87\x97\x06W"\x10\xd0\xa0',
        False,
    )
    assert hashlib.md5(files["corrupt"].data).hexdigest() == "5c9b82816aafe7b8c3b1aa910b736355"
    assert refs["corrupt"].mode == 0 and refs["logo"].user == "1000"


def test_examples_are_unchanged_copies(examples: Path, tmp_path: Path) -> None:
    # Loading must not depend on where the file lives (base_dir only resolves URIs).
    copy = tmp_path / "tomcat.pod"
    shutil.copy(examples / "tomcat.pod", copy)
    assert load_pod_file(copy) == load_pod_file(examples / "tomcat.pod")


def test_kubernetes_form_with_k(examples: Path) -> None:
    tomcat = load_pod_file(examples / "kubernetes_tomcat.pod", kubernetes=True)
    assert tomcat.id == "test-k8s" and tomcat.labels == {"name": "tomcat"}
    (container,) = tomcat.containers
    assert (container.name, container.image, container.tty) == ("Tomcat-Master", "tomcat", True)
    assert tomcat.portmappings == []  # a containerPort without hostPort publishes nothing
    restart = load_pod_file(examples / "kubernetes_ubuntu_restart.pod", kubernetes=True)
    (container,) = restart.containers
    assert container.command == ["sleep", "10"] and container.entrypoint is None
    assert container.restart_policy == "never" and restart.id == "test-k8s-restartPolicy"

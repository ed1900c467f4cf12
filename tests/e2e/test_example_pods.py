"""The original hyperd's 14 example pod files (tests/data/hyperd-examples), run as their
authors meant them, each in its own VM; the two this runtime cannot run are refused
by `validate` and `run` alike, with the reason.

The examples name ubuntu, tomcat and busybox images that are not reachable
offline: stand-ins are loaded under those names (busybox with /bin/bash, a
vmstat, the users and groups the examples name; "tomcat" serves on 8080).
Only what cannot run here is changed in the files: the remote logo of
insert-file.pod comes from a server on loopback, and port-mapping.pod's host
ports are moved to free ones.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
from pathlib import Path

import pytest
from hypercontainer_plugins.images.build import Image, Layer

from tests.support import imagebuild
from tests.support.daemon import Hyperd, announced_pod, rows, wait_for
from tests.support.podfiles import EXAMPLES, NOT_RUNNABLE, RUNS_AS_MEANT
from tests.support.registry import free_ports
from tests.support.webserver import WebServer

pytestmark = pytest.mark.vm

BOOT = 240
BASH = b'#!/bin/sh\nexec /bin/sh "$@"\n'
VMSTAT = (
    b"#!/bin/sh\n# vmstat [DELAY [COUNT]]: a line per DELAY seconds, COUNT times\n"
    b'n=0; while [ "$n" -lt "${2:-1}" ]; do echo "procs $n"; n=$((n+1)); '
    b'sleep "${1:-1}"; done\n'
)
LOGO = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
UBUNTU_GROUPS = b"root:x:0:\nmail:x:8:\nproxy:x:13:\ncdrom:x:24:\nnobody:x:65534:\n"


def stand_ins() -> dict[str, imagebuild.Built]:
    base = imagebuild.busybox_base
    ubuntu = (
        Layer()
        .file("bin/bash", BASH, 0o755)
        .file("usr/bin/vmstat", VMSTAT, 0o755)
        .file("etc/group", UBUNTU_GROUPS)
    )
    tomcat = Layer().dir("www").file("www/index.html", b"tomcat stand-in\n")
    return {
        "docker.io/library/ubuntu:latest": Image([base(), ubuntu], cmd=["/bin/bash"]).build(),
        "docker.io/library/tomcat:latest": Image(
            [base(), tomcat], cmd=["httpd", "-f", "-p", "8080", "-h", "/www"]
        ).build(),
        # Docker's busybox image has every applet in /bin (port-mapping.pod runs /bin/nc).
        "docker.io/library/busybox:latest": Image(
            [base(), Layer().symlink("bin/nc", "/bin/busybox")], cmd=["sh"]
        ).build(),
    }


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    daemon = Hyperd().start()
    try:
        archive = imagebuild.write_archive(tmp_path_factory.mktemp("images") / "a.tar", stand_ins())
        daemon.hyperctl("load", "-i", str(archive), check=True)
        yield daemon
    finally:
        daemon.cleanup()


def run(daemon: Hyperd, name: str, path: Path | None = None) -> str:
    """`hyperctl run` the example as its users would (detached: its two lines)."""
    flag = "-k" if name.startswith("kubernetes_") else "-p"
    out = daemon.hyperctl(
        "run", flag, str(path or EXAMPLES / name), check=True, timeout=BOOT
    ).stdout
    return announced_pod(out)


def state(daemon: Hyperd, pod: str) -> str:
    return {row[0]: row[3] for row in rows(daemon.hyperctl("list").stdout)}[pod]


def running(daemon: Hyperd, pod: str) -> dict[str, str]:
    """The pod's containers by name, once the pod runs (all of them started)."""
    wait_for(lambda: state(daemon, pod) == "running", BOOT, what=f"{pod} to run")
    containers = {c["name"]: c["state"] for c in daemon.api("GET", f"/containers?pod={pod}")}
    wait_for(
        lambda: "pending" not in {c["state"] for c in daemon.api("GET", f"/containers?pod={pod}")},
        60,
        what=f"{pod}'s containers to start",
    )
    return containers


def shell(daemon: Hyperd, target: str, script: str) -> str:
    return daemon.hyperctl("exec", target, "sh", "-c", script, check=True).stdout


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def check_file_mapping(daemon, tmp_path):
    pod = run(daemon, "file-mapping.pod")
    assert running(daemon, pod) == {"mapping": "running"}
    inside = shell(daemon, "mapping", "md5sum /etc/resolv.conf").split()[0]
    assert inside == md5(Path("/etc/resolv.conf").read_bytes())  # the host's own file
    return pod


def check_insert_file(daemon, tmp_path):
    with WebServer({"/test/logo.png": LOGO}) as web:
        text = (EXAMPLES / "insert-file.pod").read_text()
        remote = "http://7xj84t.com1.z0.glb.clouddn.com/test/logo.png"
        path = tmp_path / "insert-file.pod"
        path.write_text(text.replace(remote, web.url("/test/logo.png")))
        pod = run(daemon, "insert-file.pod", path)
        assert web.requests == ["/test/logo.png"]  # fetched by hyperctl, once
    running(daemon, pod)
    sums = dict(
        line.split()[::-1] for line in shell(daemon, pod, "cd /root/test && md5sum *").splitlines()
    )
    # The checksums the original's own integration test expects (hack/test-cmd.sh).
    assert sums == {
        "resolv.conf": md5(Path("/etc/resolv.conf").read_bytes()),
        "logo.png": md5(LOGO),
        "t1": "d41d8cd98f00b204e9800998ecf8427e",
        "t2": "e75fa12f18625654acd5aaa207fc78c5",
        "t3": "5c9b82816aafe7b8c3b1aa910b736355",
    }
    modes = shell(daemon, pod, "cd /root/test && stat -c '%n %a %u:%g' *").split("\n")
    assert "logo.png 644 1000:1000" in modes and "t3 0 0:0" in modes
    assert "resolv.conf 600 0:0" in modes and "t2 755 0:0" in modes
    return pod


def check_kubernetes_tomcat(daemon, tmp_path):
    pod = run(daemon, "kubernetes_tomcat.pod")
    assert pod == "test-k8s" and running(daemon, pod) == {"Tomcat-Master": "running"}
    wait_for(
        lambda: (
            "tomcat stand-in"
            in daemon.hyperctl(
                "exec", "Tomcat-Master", "wget", "-qO-", "http://127.0.0.1:8080/"
            ).stdout
        ),
        60,
        what="tomcat to serve 8080",
    )
    (inspected,) = json.loads(daemon.hyperctl("inspect", pod, check=True).stdout)
    assert inspected["labels"] == {"name": "tomcat"}
    return pod


def check_kubernetes_ubuntu_restart(daemon, tmp_path):
    pod = run(daemon, "kubernetes_ubuntu_restart.pod")
    # sleep 10, restart policy Never: the pod ends by itself, succeeded.
    wait_for(lambda: state(daemon, pod) == "succeeded", BOOT, what="the pod to end")
    (container,) = daemon.api("GET", f"/containers?pod={pod}")
    assert (container["name"], container["exit_code"]) == ("Ubuntu-1", 0)
    return pod


def check_multi_container(daemon, tmp_path):
    pod = run(daemon, "multi-container.pod")
    assert set(running(daemon, pod)) == {"web", "top", "vmstat"}
    wait_for(
        lambda: "procs 1" in daemon.hyperctl("logs", "vmstat").stdout, 60, what="vmstat's output"
    )
    assert "Mem:" in daemon.hyperctl("logs", "top").stdout  # top draws on its terminal
    assert (
        "tomcat stand-in"
        in daemon.hyperctl("exec", "top", "wget", "-qO-", "http://127.0.0.1:8080/").stdout
    )
    return pod


def check_port_mapping(daemon, tmp_path):
    first = free_ports(11)
    text = (EXAMPLES / "port-mapping.pod").read_text()
    path = tmp_path / "port-mapping.pod"
    path.write_text(text.replace('"3000-3010"', f'"{first}-{first + 10}"'))
    pod = run(daemon, "port-mapping.pod", path)
    running(daemon, pod)
    listed = daemon.hyperctl("ports", "ls", pod, check=True).stdout
    assert f"127.0.0.1:{first + 10}" in listed and "1310" in listed

    def sent() -> bool:
        # QEMU accepts on the host before nc listens in the guest (and nc ends after one
        # connection): look for the text first, send it again only if it is not there.
        if "through port 1300" in daemon.hyperctl("logs", "pmtest").stdout:
            return True
        try:
            with socket.create_connection(("127.0.0.1", first), timeout=5) as conn:
                conn.sendall(b"through port 1300\n")
        except OSError:
            pass
        return False

    wait_for(sent, 60, what="nc in the pod to get the text")
    return pod


def check_tomcat(daemon, tmp_path):
    pod = run(daemon, "tomcat.pod")
    assert running(daemon, pod) == {"web": "running"}
    wait_for(
        lambda: (
            "tomcat stand-in"
            in daemon.hyperctl("exec", "web", "wget", "-qO-", "http://127.0.0.1:8080/").stdout
        ),
        60,
        what="tomcat",
    )
    return pod


def check_ubuntu_attach_files(daemon, tmp_path):
    pod = run(daemon, "ubuntu-attach-files.pod")
    running(daemon, pod)
    # `path` ends in /: a directory, the file keeps its name.
    listed = shell(daemon, "ubuntu", "stat -c '%n %a' /etc/mysql/conf.d/*")
    assert listed == "/etc/mysql/conf.d/disable-aio.cnf 777\n"
    assert shell(daemon, "ubuntu", "cat /etc/mysql/conf.d/disable-aio.cnf") == (
        "[mysqld]\ninnodb_use_native_aio = FALSE"
    )
    return pod


def check_ubuntu_with_user(daemon, tmp_path):
    # As the original's own test script runs pod files: run --rm -a -p, output attached.
    ran = daemon.hyperctl(
        "run", "--rm", "-a", "-p", str(EXAMPLES / "ubuntu-with-user.pod"), timeout=BOOT
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == (
        "uid=65534(nobody) gid=13(proxy) groups=8(mail),24(cdrom)"
    )  # busybox's id
    assert "test-container-create-ubuntu" not in daemon.hyperctl("list").stdout
    return None


def check_ubuntu(daemon, tmp_path, name="ubuntu.pod"):
    pod = run(daemon, name)
    (container,) = running(daemon, pod)
    assert (
        daemon.hyperctl("exec", container, "bash", "-c", "echo in bash", check=True).stdout
        == "in bash\n"
    )
    return pod


def check_ubuntu_yml(daemon, tmp_path):
    pod = check_ubuntu(daemon, tmp_path, "ubuntu.yml")
    assert pod == "process-yaml-file-ubuntu"
    return pod


def check_with_volume(daemon, tmp_path):
    pod = run(daemon, "with-volume.pod")
    assert set(running(daemon, pod)) == {"web", "shell"}
    marker = f"with-volume-{tmp_path.name}"
    try:
        shell(daemon, "shell", f"echo OK > /var/log/{marker}; echo OK > /mnt/{marker}")
        # "log" is an empty volume both containers share; "tmp" is the host's /tmp.
        assert shell(daemon, "web", f"cat /var/log/{marker}") == "OK\n"
        assert Path("/tmp", marker).read_text() == "OK\n"
    finally:
        Path("/tmp", marker).unlink(missing_ok=True)
    return pod


CHECKS = {
    "file-mapping.pod": check_file_mapping,
    "insert-file.pod": check_insert_file,
    "kubernetes_tomcat.pod": check_kubernetes_tomcat,
    "kubernetes_ubuntu_restart.pod": check_kubernetes_ubuntu_restart,
    "multi-container.pod": check_multi_container,
    "port-mapping.pod": check_port_mapping,
    "tomcat.pod": check_tomcat,
    "ubuntu-attach-files.pod": check_ubuntu_attach_files,
    "ubuntu-with-user.pod": check_ubuntu_with_user,
    "ubuntu.pod": check_ubuntu,
    "ubuntu.yml": check_ubuntu_yml,
    "with-volume.pod": check_with_volume,
}


def test_every_example_is_counted():
    names = {p.name for p in EXAMPLES.iterdir() if p.suffix in (".pod", ".yml")}
    assert len(names) == 14 and names == set(CHECKS) | set(NOT_RUNNABLE)
    assert set(CHECKS) == set(RUNS_AS_MEANT)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_example_runs_as_meant(daemon, tmp_path, name):
    pod = CHECKS[name](daemon, tmp_path)
    if pod:
        daemon.hyperctl("rm", pod, check=True)


@pytest.mark.parametrize("name", sorted(NOT_RUNNABLE))
def test_example_refused_by_validate_as_by_run(daemon, tmp_path, name):
    copy = tmp_path / name
    shutil.copy(EXAMPLES / name, copy)
    checked = daemon.hyperctl("validate", str(copy))
    ran = daemon.hyperctl("run", "-p", str(copy))
    for result in (checked, ran):
        assert result.returncode == 1
        assert result.stderr == f"hyperctl ERROR: {copy}: {NOT_RUNNABLE[name]}\n"
    assert daemon.hyperctl("list", "-q").stdout.strip() == ""

"""A pod is a VM: what runs in it, and what happens when the VM dies.

One pod (one VM boot) carries most assertions: its hostname, two containers
talking over localhost, logs, exec exit codes, a container created after the
pod started, pause and unpause, and finally kill -9 of its qemu.
"""

import json
import os
import signal

import pytest

from tests.support.daemon import announced_pod, qemu_pids, rows, wait_for

pytestmark = pytest.mark.vm

SERVER = [
    "sh",
    "-c",
    "trap 'exit 0' TERM; echo listening; nc -ll -p 7777 -e echo pong-from-server & wait",
]
CLIENT = [
    "sh",
    "-c",
    "trap 'exit 0' TERM; until nc 127.0.0.1 7777 </dev/null; do sleep 0.2; done; sleep 1000 & wait",
]


def container_states(hyperd, pod):
    return {row[1]: row[3] for row in rows(hyperd.hyperctl("list", "container", "-p", pod).stdout)}


def test_run_reports_the_exit_code_and_the_container_shows_failed(hyperd):
    result = hyperd.hyperctl("run", "--name", "seventeen", "busybox", "sh", "-c", "exit 17")
    assert result.returncode == 17, result.stderr
    assert container_states(hyperd, "seventeen") == {"seventeen": "failed"}
    # Its only container exited: the pod ended with it, its VM is gone.
    wait_for(
        lambda: rows(hyperd.hyperctl("list").stdout)[0][3] == "failed",
        60,
        what="the pod to end with its container",
    )
    assert not (hyperd.run_root / "pods" / "seventeen").exists()
    hyperd.hyperctl("rm", "seventeen", check=True)


def test_run_rm_reports_the_exit_code_and_both_streams(hyperd):
    result = hyperd.hyperctl(
        "run", "--rm", "busybox", "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 17"
    )
    assert result.returncode == 17, result.stderr
    assert "to-stdout" in result.stdout and "to-stdout" not in result.stderr
    assert "to-stderr" in result.stderr
    assert rows(hyperd.hyperctl("list").stdout) == []


def test_a_pod_and_its_containers(hyperd, tmp_path):
    podfile = tmp_path / "pod.json"
    podfile.write_text(
        json.dumps(
            {
                "id": "twins",
                "hostname": "twin-host",
                "containers": [
                    {"name": "server", "image": "busybox", "command": SERVER},
                    {"name": "client", "image": "busybox", "command": CLIENT},
                ],
            }
        )
    )
    out = hyperd.hyperctl("run", "-d", "-p", str(podfile), check=True).stdout
    assert announced_pod(out) == "twins"

    # Two containers of one pod share its network: the client reached the server.
    wait_for(
        lambda: "pong-from-server" in hyperd.hyperctl("logs", "client").stdout,
        what="the client container to reach the server on localhost",
    )
    assert "listening" in hyperd.hyperctl("logs", "server").stdout

    # The hostname is the spec's, in every container and in exec.
    assert hyperd.hyperctl("exec", "twins", "hostname", check=True).stdout == "twin-host\n"
    assert hyperd.hyperctl("exec", "client", "hostname").stdout == "twin-host\n"

    exec_result = hyperd.hyperctl("exec", "twins", "sh", "-c", "echo in-exec; exit 37")
    assert exec_result.returncode == 37 and exec_result.stdout == "in-exec\n"
    missing = hyperd.hyperctl("exec", "twins", "no-such-command")
    assert missing.returncode != 0 and missing.stderr.strip()

    # A container created after the pod started runs in it.
    hyperd.hyperctl(
        "create",
        "-c",
        "--name",
        "late",
        "twins",
        "busybox",
        "sh",
        "-c",
        "echo late-output; cat /etc/hostname",
        check=True,
    )
    assert container_states(hyperd, "twins")["late"] == "pending"
    hyperd.hyperctl("start", "-c", "late", check=True)
    wait_for(
        lambda: container_states(hyperd, "twins")["late"] == "succeeded",
        what="the late container to finish",
    )
    assert hyperd.hyperctl("logs", "late").stdout == "late-output\ntwin-host\n"
    assert hyperd.hyperctl("logs", "--tail", "1", "late").stdout == "twin-host\n"

    # Pause and unpause: the VM stops running and comes back.
    assert hyperd.hyperctl("pause", "twins").returncode == 0
    assert rows(hyperd.hyperctl("list").stdout)[0][3] == "paused"
    refused = hyperd.hyperctl("pause", "twins")
    assert refused.returncode == 1 and "only a running pod pauses" in refused.stderr
    assert hyperd.hyperctl("unpause", "twins").returncode == 0
    assert hyperd.hyperctl("exec", "twins", "true").returncode == 0

    # kill -9 of the VMM: the pod fails, and rm leaves nothing behind.
    (pid,) = qemu_pids(hyperd.run_root)
    os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: rows(hyperd.hyperctl("list").stdout)[0][3] == "failed",
        timeout=20,
        what="the pod to be marked failed",
    )
    assert set(container_states(hyperd, "twins").values()) <= {"failed", "succeeded"}
    assert not (hyperd.run_root / "pods" / "twins").exists()
    out = hyperd.hyperctl("rm", "twins", check=True).stdout
    assert out == "Pod(twins) is successfully deleted!\n"
    assert not (hyperd.state_root / "pods" / "twins").exists()
    assert qemu_pids(hyperd.run_root) == []

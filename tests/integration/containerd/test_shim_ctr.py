"""containerd's own client drives pods through the shim: Debian's containerd and ctr,
`--runtime io.containerd.hyper.v2`, real QEMU VMs, hyperd started by the shim.

Two VMs in all: one `ctr run --rm`, and one long-running task that every other
assertion shares (exec, ps, pause/resume, kill, rm, hostile ttrpc peers)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import signal
import socket
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypercontainer import mounts
from hypercontainer.shim import ttrpc_frame as frames
from hypercontainer.shim.protogen import shim_protos
from hypercontainer.shim.status import Code, RpcError
from hypercontainer.shim.ttrpc_client import Client

from tests.support.containerd import BUSYBOX, RUNTIME, SHIM_TESTS, Containerd

pytestmark = SHIM_TESTS

TASK = "containerd.task.v2.Task"
P = shim_protos()
SLEEPER = ["sh", "-c", "trap 'exit 3' TERM; echo ready; while :; do sleep 1; done"]


@pytest.fixture(scope="module")
def containerd():
    daemon = Containerd().start()
    try:
        daemon.import_images()
        yield daemon
    finally:
        daemon.stop()


def run(containerd: Containerd, *args: str, check: bool = True):
    return containerd.ctr(
        "run",
        "--runtime",
        RUNTIME,
        "--runtime-config-path",
        str(containerd.hyperd_config),
        *args,
        check=check,
    )


def task_status(containerd: Containerd, task: str) -> tuple[int, str]:
    for line in containerd.ctr("task", "ls").stdout.decode().splitlines()[1:]:
        name, pid, status = line.split()
        if name == task:
            return int(pid), status
    raise AssertionError(f"no task {task}")


def wait_status(containerd: Containerd, task: str, wanted: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while task_status(containerd, task)[1] != wanted:
        assert time.monotonic() < deadline, f"task {task} never became {wanted}"
        time.sleep(0.2)


def test_ctr_run_prints_the_output_and_returns_the_exit_code(containerd) -> None:
    result = run(
        containerd,
        "--rm",
        BUSYBOX,
        "once",
        "sh",
        "-c",
        "echo hello from a pod; echo to stderr >&2; exit 7",
        check=False,
    )
    assert result.returncode == 7, result.stderr
    assert result.stdout.decode().splitlines() == ["hello from a pod"]
    assert result.stderr.decode().splitlines() == ["to stderr"]
    # --rm: nothing of it is left, neither in containerd nor in hyperd
    assert "once" not in containerd.ctr("containers", "ls", "-q").stdout.decode()
    assert "once" not in containerd.hyperctl("list").stdout
    assert containerd.qemu_pids() == []


@pytest.fixture(scope="module")
def events(containerd) -> Iterator[list[str]]:
    """The lines `ctr events` prints, from before the sleeper's task is made."""
    watcher = subprocess.Popen(
        containerd.ctr_command("events"),
        env=containerd.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []

    def read() -> None:
        for line in watcher.stdout or ():
            lines.append(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    try:
        # Subscribed once an event of our own making comes through.
        deadline = time.monotonic() + 30
        probe = 0
        while not any("/namespaces/update" in line for line in lines):
            assert time.monotonic() < deadline, "ctr events printed nothing"
            probe += 1
            containerd.ctr("namespaces", "label", "default", f"events-probe={probe}")
            time.sleep(0.2)
        yield lines
    finally:
        watcher.kill()
        watcher.wait()


def task_events(lines: list[str], task: str) -> list[tuple[str, dict]]:
    """(topic, event) of each /tasks/ event about `task`, in the order containerd had them."""
    found = []
    for line in lines:
        if match := re.search(r" (/tasks/[a-z-]+) (\{.*\})$", line):
            event = json.loads(match.group(2))
            if event.get("container_id") == task:
                found.append((match.group(1), event))
    return found


@pytest.fixture(scope="module")
def sleeper(containerd, events):
    """A detached task (`ctr run -d`) in its own pod; every assertion below shares it."""
    run(containerd, "-d", "--env", "GREETING=hi", "--cwd", "/tmp", BUSYBOX, "sleeper", *SLEEPER)
    wait_status(containerd, "sleeper", "RUNNING")
    return "sleeper"


def shim_address(containerd: Containerd, task: str) -> str:
    bundle = Path(containerd.root) / "state" / "io.containerd.runtime.v2.task" / "default" / task
    return (bundle / "address").read_text()


def test_the_pod_is_hyperd_s_labelled_and_its_pid_is_the_vm(containerd, sleeper) -> None:
    pid, status = task_status(containerd, sleeper)
    assert status == "RUNNING"
    assert containerd.qemu_pids() == [pid]  # the task's host process is the pod's VM
    listing = containerd.hyperctl("list").stdout
    assert re.search(
        r"^sleeper-[0-9a-f]{8}\s+sleeper-[0-9a-f]{8}\s+vm-\w+\s+running", listing, re.M
    ), listing
    pod_id = next(line.split()[0] for line in listing.splitlines() if "sleeper-" in line)
    (pod,) = json.loads(containerd.hyperctl("inspect", "--type", "pod", pod_id).stdout)
    assert pod["spec"]["labels"] == {
        "io.containerd.namespace": "default",
        "io.containerd.task": "sleeper",
    }


def test_exec_gives_output_exit_code_env_and_cwd(containerd, sleeper) -> None:
    result = containerd.ctr(
        "task",
        "exec",
        "--exec-id",
        "e1",
        sleeper,
        "sh",
        "-c",
        "echo $GREETING in $(pwd); exit 5",
        check=False,
    )
    assert result.returncode == 5, result.stderr
    assert result.stdout.decode() == "hi in /tmp\n"


def test_exec_takes_stdin(containerd, sleeper) -> None:
    result = containerd.ctr(
        "task", "exec", "--exec-id", "e2", sleeper, "sh", "-c", "tr a-z A-Z", input=b"shout\n"
    )
    assert result.stdout.decode() == "SHOUT\n"


def test_ps_lists_the_guest_processes(containerd, sleeper) -> None:
    lines = containerd.ctr("task", "ps", sleeper).stdout.decode().splitlines()
    assert lines[0].split()[0] == "PID" and len(lines) >= 2
    assert all(line.split()[0].isdigit() for line in lines[1:])


def test_pause_and_resume_freeze_the_vm(containerd, sleeper) -> None:
    containerd.ctr("task", "pause", sleeper)
    assert task_status(containerd, sleeper)[1] == "PAUSED"
    assert containerd.hyperctl("list").stdout.count("paused") == 1
    containerd.ctr("task", "resume", sleeper)
    assert task_status(containerd, sleeper)[1] == "RUNNING"
    result = containerd.ctr("task", "exec", "--exec-id", "e3", sleeper, "echo", "awake")
    assert result.stdout.decode() == "awake\n"


def test_a_terminal_gets_the_size_of_ctr_s_terminal(containerd, sleeper) -> None:
    """`ctr task exec -t` sends the pty's size with ResizePty; the process sees it."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 37, 91, 0, 0))
    command = [
        "ctr",
        "--address",
        containerd.address,
        "task",
        "exec",
        "-t",
        "--exec-id",
        "tty1",
        sleeper,
        "sh",
        "-c",
        "sleep 1; stty size; [ -t 0 ] && echo tty",
    ]
    process = subprocess.Popen(
        command, stdin=child, stdout=child, stderr=child, env=containerd.env, start_new_session=True
    )
    os.close(child)
    output = b""
    try:
        while True:
            try:
                chunk = os.read(main, 1024)
            except OSError:  # the pty closed: ctr is done
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(main)
    assert process.wait(60) == 0
    assert output.replace(b"\r", b"").split(b"\n")[:2] == [b"37 91", b"tty"], output


def test_a_restarted_hyperd_loses_nothing(containerd, sleeper) -> None:
    (hyperd,) = containerd.hyperd_pids()
    os.kill(hyperd, signal.SIGKILL)
    # the next request starts hyperd again (as hyperctl would), which adopts the pod
    result = containerd.ctr("task", "exec", "--exec-id", "after", sleeper, "echo", "still here")
    assert result.stdout.decode() == "still here\n"
    assert task_status(containerd, sleeper)[1] == "RUNNING"
    assert len(containerd.hyperd_pids()) == 1 and containerd.hyperd_pids() != [hyperd]


# -- hostile peers: refused, and the shim goes on serving ------------------------------


def raw_peer(containerd: Containerd, task: str) -> socket.socket:
    peer = socket.socket(socket.AF_UNIX)
    peer.settimeout(30)
    peer.connect(shim_address(containerd, task).removeprefix("unix://"))
    return peer


def status_of(peer: socket.socket) -> tuple[int, int]:
    frame = frames.read_frame(peer.makefile("rb"))
    response = P.message("ttrpc.Response").FromString(frame.data)
    return frame.stream_id, response.status.code


def test_malformed_oversized_and_unknown_requests_are_refused(containerd, sleeper) -> None:
    peer = raw_peer(containerd, sleeper)
    peer.sendall(frames.encode(1, frames.REQUEST, b"\xff\xfe garbage"))
    assert status_of(peer) == (1, Code.INVALID_ARGUMENT)
    big = frames.MAX_DATA + 1
    peer.sendall(struct.pack(">IIBB", big, 3, frames.REQUEST, 0) + b"\0" * big)
    assert status_of(peer) == (3, Code.RESOURCE_EXHAUSTED)
    request = P.message("ttrpc.Request")(service=TASK, method="Explode")
    peer.sendall(frames.encode(5, frames.REQUEST, request.SerializeToString()))
    assert status_of(peer) == (5, Code.UNIMPLEMENTED)
    peer.sendall(b"\x00\x00")  # and hang up inside a header
    peer.close()
    with Client(P, shim_address(containerd, sleeper)) as client:
        state = client.call(TASK, "State", P.message("containerd.task.v2.StateRequest")(id=sleeper))
        assert state.status == P.enum("containerd.v1.types.Status").values_by_name["RUNNING"].number
        with pytest.raises(RpcError) as missing:
            client.call(TASK, "State", P.message("containerd.task.v2.StateRequest")(id="nope"))
        assert missing.value.code == Code.NOT_FOUND
    assert task_status(containerd, sleeper)[1] == "RUNNING"


def hostile_bundle(tmp_path: Path, sandbox: str, source: str) -> str:
    bundle = tmp_path / "evil"
    (bundle / "rootfs").mkdir(parents=True)
    spec = {
        "ociVersion": "1.0.2",
        "process": {"args": ["sh"], "cwd": "/"},
        "root": {"path": "rootfs"},
        "annotations": {
            "io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri.sandbox-id": sandbox,
        },
        "mounts": [
            {"destination": "/host", "type": "bind", "source": source, "options": ["rbind", "rw"]}
        ],
    }
    (bundle / "config.json").write_text(json.dumps(spec))
    return str(bundle)


@pytest.mark.parametrize("source", ["/", "/proc", "{hyperd_state}", "/etc/hypercontainer/x"])
def test_a_bundle_naming_host_paths_it_may_not_is_refused(
    containerd, sleeper, tmp_path, source
) -> None:
    source = source.format(hyperd_state=containerd.hyperd_root / "s")
    with Client(P, shim_address(containerd, sleeper)) as client:
        create = P.message("containerd.task.v2.CreateTaskRequest")(
            id="evil", bundle=hostile_bundle(tmp_path, sleeper, source)
        )
        with pytest.raises(RpcError) as refused:
            client.call(TASK, "Create", create)
        assert refused.value.code == Code.INVALID_ARGUMENT, refused.value.message
        assert len(refused.value.message.splitlines()) == 1
        with pytest.raises(RpcError):
            client.call(TASK, "State", P.message("containerd.task.v2.StateRequest")(id="evil"))
    assert mounts.mounted_under(str(tmp_path)) == []
    assert "evil" not in containerd.hyperctl("list", "container").stdout
    assert task_status(containerd, sleeper)[1] == "RUNNING"


def test_a_lone_container_naming_host_paths_boots_no_vm(containerd, sleeper) -> None:
    before = containerd.qemu_pids()
    result = run(
        containerd,
        "--rm",
        "--mount",
        "type=bind,src=/,dst=/host,options=rbind:rw",
        BUSYBOX,
        "escape",
        "true",
        check=False,
    )
    assert result.returncode != 0
    assert "root directory" in result.stderr.decode()
    assert containerd.qemu_pids() == before


# -- the end: kill, rm, nothing left -------------------------------------------------


def test_kill_ends_the_task_with_its_exit_code_and_rm_leaves_nothing(containerd, sleeper) -> None:
    containerd.ctr("task", "kill", "--signal", "TERM", sleeper)
    wait_status(containerd, sleeper, "STOPPED")
    result = containerd.ctr("task", "rm", sleeper)
    assert "exit with non-zero exit code 3" in result.stderr.decode()
    containerd.ctr("containers", "rm", sleeper)
    deadline = time.monotonic() + 60
    while containerd.qemu_pids() or containerd.shim_pids():
        assert time.monotonic() < deadline, "the VM or the shim outlived the task"
        time.sleep(0.2)
    assert "sleeper" not in containerd.hyperctl("list").stdout
    assert mounts.mounted_under(str(containerd.root)) == []
    assert not any((containerd.hyperd_root / "s" / "pods").iterdir())


def test_the_shim_s_events_reach_containerd(containerd, events) -> None:
    """What the CRI plugin learns a task's life from: every event the shim sends, for the
    sleeper's whole life above (run, execs, pause, resume, kill, rm), in order."""
    seen = task_events(events, "sleeper")
    topics = [topic for topic, _ in seen]
    life = [
        "/tasks/create",
        "/tasks/start",
        "/tasks/exec-added",
        "/tasks/exec-started",
        "/tasks/paused",
        "/tasks/resumed",
        "/tasks/exit",
        "/tasks/delete",
    ]
    remaining = iter(topics)
    assert all(topic in remaining for topic in life), topics  # in this order
    (created,) = [event for topic, event in seen if topic == "/tasks/create"]
    assert created["bundle"].endswith("/default/sleeper")
    assert {"e1", "e2", "e3"} <= {e.get("exec_id") for t, e in seen if t == "/tasks/exec-added"}
    exits = {
        event.get("id"): event.get("exit_status", 0) for t, event in seen if t == "/tasks/exit"
    }
    assert exits["e1"] == 5 and exits["sleeper"] == 3, exits  # execs' and the task's own

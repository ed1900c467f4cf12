"""What a user does at a terminal: interactive sessions in a real pseudo-terminal, stdin,
signals, and commands that must not hang. Real VMs throughout.

One tty pod (booted by an interrupted `run -d`) carries the exec -t, attach,
detach and exec-interrupt assertions; runs that own their pod (run -t, --rm,
signals to run) each boot their own.
"""

import signal
import subprocess
import time

import pytest

from tests.support.daemon import HYPERCTL, announced_pod, rows, wait_for
from tests.support.terminal import Terminal

pytestmark = pytest.mark.vm

PROMPT = rb"/ # "
BOOT = 180  # seconds a boot may take on a busy TCG machine


def lflags(mode: list) -> int:
    return mode[3]


def pods(hyperd) -> dict[str, str]:
    return {row[0]: row[3] for row in rows(hyperd.hyperctl("list").stdout)}


def containers(hyperd) -> dict[str, str]:
    return {row[1]: row[3] for row in rows(hyperd.hyperctl("list", "container").stdout)}


def processes(hyperd, pod: str) -> str:
    return hyperd.hyperctl("exec", pod, "ps", "-o", "args", check=True).stdout


def terminal(hyperd, *args: str, rows: int = 24, cols: int = 80) -> Terminal:
    return Terminal([*HYPERCTL, *args], hyperd.env, rows=rows, cols=cols)


def test_run_t_is_a_shell_in_the_terminal(hyperd):
    with terminal(hyperd, "run", "-t", "--rm", "busybox", "sh") as term:
        term.expect(rb"booting the VM of pod busybox-\d+ \.\.\.", 30)
        term.expect(rb"\r\x1b\[2K", BOOT)  # the progress line goes before the session
        term.expect(PROMPT, BOOT)
        assert term.is_raw()
        term.send(b"stty size\r")
        term.expect(rb"24 80")
        term.resize(40, 120)  # SIGWINCH to hyperctl, which tells the container's terminal
        wait_for(
            lambda: b"40 120" in _ask(term, b"stty size\r"),
            30,
            what="the container's terminal to follow the resize",
        )
        # Ctrl-C is a key for the shell's own terminal: it interrupts the foreground job.
        term.send(b"sleep 1000\r")
        (pod,) = pods(hyperd)
        wait_for(lambda: "sleep 1000" in processes(hyperd, pod), 60, what="sleep to run")
        term.send(b"\x03")
        term.expect(PROMPT)
        term.send(b"echo rc=$?\r")
        term.expect(rb"rc=130")
        term.send(b"exit 5\r")
        assert term.wait() == 5
        assert lflags(term.mode()) == lflags(term.initial_mode)  # the terminal is restored
    assert pods(hyperd) == {}


def _ask(term: Terminal, command: bytes) -> bytes:
    term.send(command)
    term.expect(PROMPT)
    return bytes(term.output[-200:])


@pytest.fixture(scope="module")
def tty_pod(hyperd):
    """A pod whose container is a shell on a terminal, from a `run -d` interrupted
    while its VM boots: the id is printed before the boot, the pod comes up."""
    with terminal(hyperd, "run", "-d", "-t", "--name", "ttypod", "busybox", "sh") as term:
        term.expect(rb"POD id is ttypod\r\n")
        term.expect(rb"booting the VM of pod ttypod \.\.\.")  # progress, on a terminal only
        term.signal(signal.SIGINT)
        code = term.wait()
        assert code in (0, 130), term.text()
    assert "ttypod" in pods(hyperd)
    wait_for(
        lambda: containers(hyperd).get("ttypod") == "running",
        BOOT,
        what="ttypod's container to run",
    )
    yield "ttypod"
    hyperd.hyperctl("rm", "ttypod")


def test_exec_t_answers_follows_resizes_and_returns_the_code(hyperd, tty_pod):
    with terminal(hyperd, "exec", "-t", tty_pod, "sh") as term:
        term.expect(PROMPT, 60)
        term.send(b"stty size\r")
        term.expect(rb"24 80")
        term.resize(30, 100)
        wait_for(
            lambda: b"30 100" in _ask(term, b"stty size\r"),
            30,
            what="the exec's terminal to follow the resize",
        )
        term.send(b"tty\r")
        term.expect(rb"/dev/pts/\d+")
        term.send(b"exit 3\r")
        assert term.wait() == 3
        assert lflags(term.mode()) == lflags(term.initial_mode)


def test_attach_types_into_the_tty_container_and_detaches(hyperd, tty_pod):
    for extra in ([], ["-t"]):  # a tty container gets raw mode with or without -t
        with terminal(hyperd, "attach", *extra, tty_pod) as term:
            wait_for(term.is_raw, 30, what="attach to set the terminal raw")
            term.send(b"echo at-$((6*7))\r")
            term.expect(rb"at-42")
            term.resize(33, 90)
            wait_for(
                lambda: b"33 90" in _ask(term, b"stty size\r"),
                30,
                what="the container's terminal to follow the resize",
            )
            term.send(b"\x10\x11")  # Ctrl-P Ctrl-Q
            assert term.wait(30) == 0
            assert "detached" in term.text()
            assert lflags(term.mode()) == lflags(term.initial_mode)
    assert containers(hyperd)[tty_pod] == "running"


def test_ctrl_c_on_exec_without_tty_ends_the_remote_process(hyperd, tty_pod):
    with terminal(hyperd, "exec", tty_pod, "sleep", "1001") as term:
        wait_for(
            lambda: "sleep 1001" in processes(hyperd, tty_pod), 60, what="the exec'd sleep to run"
        )
        assert not term.is_raw()
        term.send(b"\x03")  # the terminal turns it into SIGINT for hyperctl
        assert term.wait(60) == 130
    assert "sleep 1001" not in processes(hyperd, tty_pod)

    # A process that ignores SIGINT: the second Ctrl-C leaves, and hyperd kills it.
    with terminal(hyperd, "exec", tty_pod, "sh", "-c", "trap '' INT; exec sleep 1002") as term:
        wait_for(
            lambda: "sleep 1002" in processes(hyperd, tty_pod), 60, what="the exec'd sleep to run"
        )
        term.send(b"\x03")
        assert "sleep 1002" in processes(hyperd, tty_pod)  # forwarded, and ignored
        assert term.process.poll() is None  # hyperctl still waits for the process
        term.send(b"\x03")
        assert term.wait(60) == 130
    wait_for(
        lambda: "sleep 1002" not in processes(hyperd, tty_pod),
        30,
        what="hyperd to kill the exec its client left",
    )

    # A client killed outright: its exec goes with it.
    client = subprocess.Popen(
        [*HYPERCTL, "exec", tty_pod, "sleep", "1003"],
        env=hyperd.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    wait_for(lambda: "sleep 1003" in processes(hyperd, tty_pod), 60, what="sleep 1003")
    client.kill()
    client.wait()
    wait_for(
        lambda: "sleep 1003" not in processes(hyperd, tty_pod),
        30,
        what="hyperd to kill the exec of a killed client",
    )


def test_run_passes_stdin(hyperd):
    result = hyperd.hyperctl(
        "run", "--rm", "--name", "fed", "busybox", "sh", stdin="echo hi; exit 6\n", timeout=BOOT
    )
    assert (result.returncode, result.stdout) == (6, "hi\n"), result.stderr
    assert "fed" not in pods(hyperd)


def test_attach_passes_stdin_and_a_finished_pod_stops(hyperd):
    ran = hyperd.hyperctl(
        "run",
        "-d",
        "-i",
        "--name",
        "catter",
        "busybox",
        "sh",
        "-c",
        "cat; exit 4",
        check=True,
        timeout=BOOT,
    )
    assert announced_pod(ran.stdout) == "catter"
    assert ran.stderr == ""  # piped: no progress
    attached = hyperd.hyperctl("attach", "catter", stdin="hello through attach\n", timeout=60)
    assert attached.returncode == 4, attached.stderr
    assert attached.stdout == "hello through attach\n"
    # Its only container exited (restart policy never): the pod ends, its VM stops.
    wait_for(lambda: pods(hyperd)["catter"] == "failed", 60, what="catter to end failed")
    (container,) = hyperd.api("GET", "/containers?pod=catter")
    assert (container["state"], container["exit_code"]) == ("failed", 4)
    assert not (hyperd.run_root / "pods" / "catter").exists()
    hyperd.hyperctl("rm", "catter", check=True)


def test_signals_to_run_rm_remove_the_pod(hyperd):
    # SIGTERM once the container runs.
    run = subprocess.Popen(
        [
            *HYPERCTL,
            "run",
            "--rm",
            "--name",
            "termed",
            "busybox",
            "sh",
            "-c",
            "echo up; exec sleep 1000",
        ],
        env=hyperd.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert run.stdout.readline() == "up\n"
    run.send_signal(signal.SIGTERM)
    assert run.wait(60) == 143
    assert "termed" not in pods(hyperd)

    # SIGINT while the VM still boots.
    run = subprocess.Popen(
        [*HYPERCTL, "run", "--rm", "--name", "inted", "busybox", "true"],
        env=hyperd.env,
        stdin=subprocess.DEVNULL,
    )
    wait_for(lambda: "inted" in pods(hyperd), 60, what="the pod to be created")
    run.send_signal(signal.SIGINT)
    assert run.wait(BOOT) == 130
    assert "inted" not in pods(hyperd)
    assert not (hyperd.run_root / "pods" / "inted").exists()


def test_an_attached_run_whose_vm_cannot_start_returns_at_once(hyperd):
    began = time.monotonic()
    result = hyperd.hyperctl(
        "run", "--rm", "--name", "huge", "--memory", "102400", "busybox", "true", timeout=120
    )
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("hyperctl ERROR: ") and "memory" in result.stderr
    assert time.monotonic() - began < 60
    assert "huge" not in pods(hyperd)

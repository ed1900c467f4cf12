"""Pods outlive hyperd: a restarted daemon adopts them, with their output and exits."""

import signal

import pytest

from tests.support.daemon import Hyperd, qemu_pids, rows, wait_for

pytestmark = pytest.mark.vm

TICKER = [
    "sh",
    "-c",
    "trap 'exit 0' TERM; i=0; while :; do echo tick-$i; i=$((i+1)); sleep 0.5; done",
]


@pytest.mark.parametrize("how", [signal.SIGKILL])
def test_a_restarted_daemon_adopts_running_pods(how):
    daemon = Hyperd().start()
    try:
        daemon.load_busybox()
        daemon.hyperctl("run", "-d", "--name", "survivor", "busybox", *TICKER, check=True)
        daemon.hyperctl(
            "create",
            "-c",
            "--name",
            "short",
            "survivor",
            "busybox",
            "sh",
            "-c",
            "sleep 3; exit 5",
            check=True,
        )
        daemon.hyperctl("start", "-c", "short", check=True)
        (pid,) = qemu_pids(daemon.run_root)

        daemon.stop(how)  # the VM keeps running without its daemon
        assert qemu_pids(daemon.run_root) == [pid]
        daemon.start()

        assert rows(daemon.hyperctl("list").stdout)[0][3] == "running"
        assert qemu_pids(daemon.run_root) == [pid]
        # The exit that happened while no daemon listened is not lost.
        wait_for(
            lambda: "failed" in daemon.hyperctl("list", "container").stdout,
            what="the short container's exit to be recorded",
        )
        states = {r[1]: r[3] for r in rows(daemon.hyperctl("list", "container").stdout)}
        assert states == {"survivor": "running", "short": "failed"}
        # Output keeps flowing into the logs, and exec works over the new link.
        before = daemon.hyperctl("logs", "survivor").stdout.count("tick-")
        wait_for(
            lambda: daemon.hyperctl("logs", "survivor").stdout.count("tick-") > before + 2,
            what="new output after adoption",
        )
        assert daemon.hyperctl("exec", "survivor", "echo", "still-here").stdout == "still-here\n"
        daemon.hyperctl("rm", "survivor", check=True)
        assert qemu_pids(daemon.run_root) == []
    finally:
        daemon.cleanup()

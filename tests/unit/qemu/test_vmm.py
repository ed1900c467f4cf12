"""A VM's QEMU process is recognised by pid, start time and run directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hypercontainer_plugins.hypervisors.qemu.vmm import Vmm, start_time


def test_a_process_that_is_not_qemu_is_not_adopted(tmp_path: Path) -> None:
    pidfile = tmp_path / "qemu.pid"
    pidfile.write_text(f"{os.getpid()}\n")
    assert Vmm.from_pidfile(pidfile, tmp_path) is None


def test_a_reused_pid_is_not_the_vm(tmp_path: Path) -> None:
    mine = start_time(os.getpid())
    assert mine is not None
    assert not Vmm(os.getpid(), mine + 1, tmp_path).alive()


def test_garbage_pidfiles_name_nothing(tmp_path: Path) -> None:
    pidfile = tmp_path / "qemu.pid"
    assert Vmm.from_pidfile(pidfile, tmp_path) is None  # missing
    pidfile.write_text("not a pid")
    assert Vmm.from_pidfile(pidfile, tmp_path) is None


def test_the_process_given_the_run_dirs_pidfile_is_found_and_waited_for(tmp_path) -> None:
    # A stand-in for QEMU: its arguments name the run dir's pid file, as QEMU's do.
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; sys.stdin.read()",
            "-pidfile",
            str(tmp_path / "qemu.pid"),
        ],
        stdin=subprocess.PIPE,
    )
    try:
        vmm = Vmm.find(child.pid, tmp_path)
        assert vmm is not None and vmm.alive()
        assert Vmm.find(child.pid, tmp_path / "other") is None
        assert not vmm.wait(0.1)
        vmm.kill()
        child.wait()
        assert vmm.wait(1) and not vmm.alive()
    finally:
        child.kill()
        child.wait()

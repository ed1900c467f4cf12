"""Pods restored from a VM template, in real VMs: each clone its own machine, the
template never written, nothing left after rm, a broken template never fails a pod."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

import pytest
from hypercontainer import config as hc_config

from tests.support.daemon import Hyperd, busybox_hyperd, qemu_pids, wait_for

pytestmark = pytest.mark.vm

SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]


def pod(hyperd: Hyperd, ref: str) -> dict:
    return hyperd.api("GET", f"/pods/{ref}")


def run_detached(hyperd: Hyperd, *options: str) -> str:
    out = hyperd.hyperctl("run", "-d", *options, "busybox", *SLEEPER, check=True).stdout
    return out.split("POD id is ")[1].split()[0]


def template_dir(hyperd: Hyperd, key: str) -> Path:
    return hc_config.load(hyperd.config_file).cache_root / "templates" / key


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def mappers(path: Path, hyperd: Hyperd) -> list[int]:
    """Processes of this hyperd (hyperd itself, the VMs it started) that map `path`, a
    template's RAM file: other daemons on the machine may have clones of it too."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            ours = (
                entry.name == str(hyperd.process.pid)
                or str(hyperd.run_root).encode() in (entry / "cmdline").read_bytes()
            )
            if entry.name.isdigit() and ours and str(path) in (entry / "maps").read_text():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def hyperd():
    with busybox_hyperd() as daemon:
        yield daemon


@pytest.fixture(scope="module")
def clones(hyperd: Hyperd):
    """Two running pods of one shape, the template's files hashed as the first made them."""
    first = run_detached(hyperd)
    key = pod(hyperd, first)["vm"]["template"]
    directory = template_dir(hyperd, key)
    before = {name: digest(directory / name) for name in ("memory", "state")}
    second = run_detached(hyperd)
    return {"pods": [first, second], "key": key, "dir": directory, "digests": before}


def in_pod(hyperd: Hyperd, ref: str, script: str) -> str:
    return hyperd.hyperctl("exec", ref, "sh", "-c", script, check=True).stdout


def test_both_pods_are_clones_of_one_template(hyperd: Hyperd, clones) -> None:
    handles = [pod(hyperd, ref)["vm"] for ref in clones["pods"]]
    assert {h["template"] for h in handles} == {clones["key"]}
    info = hyperd.api("GET", "/info")["templates"]
    mine = next(t for t in info if t["key"] == clones["key"])
    assert mine["hits"] >= 2 and mine["memory_mb"] == 128
    assert mine["shares"] == ["hc_layers", "hc_pod"]
    assert "VM templates:" in hyperd.hyperctl("info", check=True).stdout


def test_each_clone_has_its_own_randomness_clock_and_name(hyperd: Hyperd, clones) -> None:
    seen = []
    for ref in clones["pods"]:
        out = in_pod(
            hyperd,
            ref,
            "head -c 16 /dev/urandom | od -An -tx1; "
            "cat /proc/sys/kernel/random/uuid; hostname; date +%s",
        )
        random_bytes, uuid, hostname, clock = [line.strip() for line in out.splitlines()]
        assert abs(int(clock) - time.time()) <= 2, f"{ref}'s clock is {clock}"
        assert hostname == ref
        seen.append((random_bytes, uuid))
    assert seen[0][0] != seen[1][0] and seen[0][1] != seen[1][1]


def test_a_clone_s_console_carries_what_its_agent_logs(hyperd: Hyperd, clones) -> None:
    # A serial port saved while sending stays silent in clones: the agent drains it first.
    console = hyperd.state_root / "pods" / clones["pods"][1] / "console.log"
    logged = console.read_text()
    assert "hc-agent" in logged and "crun create" in logged and "crun start" in logged


def test_clones_pause_resume_and_survive_a_restart_of_hyperd(hyperd: Hyperd, clones) -> None:
    ref = clones["pods"][0]
    hyperd.hyperctl("pause", ref, check=True)
    assert pod(hyperd, ref)["state"] == "paused"
    hyperd.hyperctl("unpause", ref, check=True)
    hyperd.stop()
    hyperd.start()
    assert pod(hyperd, ref)["state"] == "running"
    assert in_pod(hyperd, ref, "echo adopted") == "adopted\n"


def test_kill_9_of_a_clone_marks_its_pod_failed(hyperd: Hyperd) -> None:
    ref = run_detached(hyperd)
    assert pod(hyperd, ref)["vm"]["template"]
    os.kill(pod(hyperd, ref)["vm"]["pid"], signal.SIGKILL)
    wait_for(lambda: pod(hyperd, ref)["state"] == "failed", 30, "the pod to fail")
    hyperd.hyperctl("rm", ref, check=True)


def test_rm_leaves_no_process_socket_directory_or_mapping_and_the_template_unwritten(
    hyperd: Hyperd, clones
) -> None:
    for ref in clones["pods"]:
        hyperd.hyperctl("rm", ref, check=True)
    assert qemu_pids(hyperd.run_root) == []
    assert list((hyperd.run_root / "pods").iterdir()) == []
    assert mappers(clones["dir"] / "memory", hyperd) == []
    after = {name: digest(clones["dir"] / name) for name in ("memory", "state")}
    assert after == clones["digests"]


def test_a_broken_template_never_fails_a_pod() -> None:
    # Its own shape (512 MB), so no other test shares the template broken here.
    with busybox_hyperd() as hyperd:
        first = run_detached(hyperd, "--memory", "512")
        key = pod(hyperd, first)["vm"]["template"]
        state = template_dir(hyperd, key) / "state"
        state.chmod(0o600)
        state.write_bytes(b"not a migration stream")
        second = run_detached(hyperd, "--memory", "512")
        assert "template" not in pod(hyperd, second)["vm"]  # booted instead
        assert in_pod(hyperd, second, "echo up") == "up\n"
        assert not template_dir(hyperd, key).exists()
        assert hyperd.log_text().count("restoring the VM from its template failed") == 1
        third = run_detached(hyperd, "--memory", "512")  # a new template, made again
        assert pod(hyperd, third)["vm"]["template"] == key


def test_templates_turned_off_boot_every_pod() -> None:
    with busybox_hyperd(config="[qemu]\ntemplate = false\n") as hyperd:
        ref = run_detached(hyperd)
        assert "template" not in pod(hyperd, ref)["vm"]
        assert in_pod(hyperd, ref, "echo booted") == "booted\n"
        assert "off" in hyperd.api("GET", "/info")["hypervisor"]["templates"]

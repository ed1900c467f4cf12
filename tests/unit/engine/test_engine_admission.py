"""Admission (core/admission.py) in the real Runtime over fake VMs, with the host's
available memory and the VMs' resident memory given by the test."""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypercontainer import config as configuration
from hypercontainer.admission import Admission, anonymous_resident, mem_available
from hypercontainer.config import AdmissionConfig
from hypercontainer.errors import UserError
from hypercontainer.model import PodState

MiB = 1 << 20


def admit(engine, available_mb: int, reserve_mb: int = 0, resident=lambda pid: None) -> None:
    engine.runtime.admission = Admission(
        AdmissionConfig(reserve_mb=reserve_mb, vm_overhead_mb=100),
        available=lambda: available_mb * MiB,
        resident=resident,
    )


def spec(engine, pod_id: str, memory: int):
    return engine.pod("sleep", "60", id=pod_id, resource={"memory": memory})


def test_a_pod_beyond_what_is_free_is_refused_before_anything_is_made(engine):
    admit(engine, available_mb=1000, reserve_mb=200)
    with pytest.raises(UserError) as refused:
        engine.runtime.run_pod(spec(engine, "big", 1024))
    assert str(refused.value) == (
        "not enough memory: the pod needs 1124 MiB (1024 MiB of memory and 100 MiB for its "
        "VM) but only 800 MiB are free (1000 MiB available, less the reserve of 200 MiB and "
        "0 MiB promised to pods already started)"
    )
    assert engine.runtime.store.pods() == []
    assert engine.host.vms == {}
    assert not engine.runtime.files.pod_dir("big").exists()


def test_what_fits_is_admitted(engine):
    admit(engine, available_mb=1000, reserve_mb=200)
    assert engine.runtime.run_pod(spec(engine, "fits", 700)).state == PodState.RUNNING


def test_concurrent_starts_cannot_overcommit(engine):
    admit(engine, available_mb=1000)  # room for two pods of 300 + 100

    def run(n: int) -> str:
        try:
            engine.runtime.run_pod(spec(engine, f"p{n}", 300))
            return "running"
        except UserError as e:
            return re.match(r"[a-z ]+", str(e)).group()

    with ThreadPoolExecutor(5) as pool:
        outcomes = list(pool.map(run, range(5)))
    assert sorted(outcomes) == ["not enough memory"] * 3 + ["running"] * 2
    assert len(engine.runtime.store.pods()) == 2
    assert len(engine.host.running()) == 2


def test_memory_a_running_vm_has_taken_is_no_longer_promised(engine, monkeypatch):
    start = engine.hypervisor.start
    monkeypatch.setattr(engine.hypervisor, "start", lambda vm: {**start(vm), "pid": 4242})
    taken = {4242: 0}
    admit(engine, available_mb=1000, resident=lambda pid: taken.get(pid))
    engine.runtime.run_pod(spec(engine, "first", 500))
    with pytest.raises(UserError, match=r"only 400 MiB are free .* 600 MiB promised"):
        engine.runtime.run_pod(spec(engine, "second", 500))
    taken[4242] = 600 * MiB  # the guest took its memory: MemAvailable counts it now
    engine.runtime.run_pod(spec(engine, "second", 300))


def test_a_refused_start_leaves_a_stopped_pod_as_it_was(engine):
    admit(engine, available_mb=10_000)
    engine.runtime.run_pod(spec(engine, "pod", 128))
    engine.runtime.stop_pod("pod")
    before = engine.runtime.store.pod("pod")
    admit(engine, available_mb=100)
    with pytest.raises(UserError, match="not enough memory"):
        engine.runtime.start_pod("pod")
    assert engine.runtime.store.pod("pod") == before


def test_admission_can_be_turned_off(engine):
    engine.runtime.admission = Admission(AdmissionConfig(enabled=False), available=lambda: 0)
    engine.runtime.run_pod(spec(engine, "pod", 128))


def test_the_settings_are_read_from_the_config_file(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[admission]\nreserve_mb = 2048\nvm_overhead_mb = 64\n")
    loaded = configuration.load(path, environ={})
    assert (loaded.admission.reserve_mb, loaded.admission.vm_overhead_mb) == (2048, 64)
    path.write_text("[admission]\nreserve_mb = -1\n")
    with pytest.raises(UserError, match=r"^config \(.*\): admission.reserve_mb: "):
        configuration.load(path, environ={})


def test_the_host_figures_are_read_from_proc():
    assert mem_available() > 0
    assert anonymous_resident(os.getpid()) > 0
    assert anonymous_resident(2**22 + 1) is None

"""Choosing KVM or TCG: the probe's verdicts and where they are remembered.

The probe runs a stand-in for qemu-system-x86_64 (a shell script) that prints
what a booting, a failing or a hanging KVM guest would; the real probe of this
machine is exercised by the VM integration tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypercontainer.errors import UserError
from hypercontainer_plugins.hypervisors.qemu import accel

BEHAVIOURS = {
    "boots": 'echo "[ 0.5] Kernel panic - not syncing: VFS: Unable to mount root fs"; sleep 30',
    "fails": 'echo "qemu-system-x86_64: failed to set MSR 0x10a" >&2; exit 1',
    "hangs": "sleep 30",
}


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fake /dev/kvm, a kernel file, an empty run root and no remembered verdicts."""
    device = tmp_path / "kvm"
    device.touch()
    monkeypatch.setattr(accel, "KVM_DEVICE", device)
    monkeypatch.setattr(accel, "_verdicts", {})
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(b"kernel")
    return tmp_path, kernel


def fake_qemu(directory: Path, behaviour: str) -> str:
    script = directory / "qemu"
    runs = directory / "runs"
    script.write_text(f"#!/bin/sh\necho run >> {runs}\n{BEHAVIOURS[behaviour]}\n")
    script.chmod(0o755)
    return str(script)


def probes_run(directory: Path) -> int:
    runs = directory / "runs"
    return len(runs.read_text().splitlines()) if runs.exists() else 0


def test_a_kernel_that_boots_means_kvm(machine) -> None:
    directory, kernel = machine
    binary = fake_qemu(directory, "boots")
    verdict = accel.kvm_verdict(binary, kernel, directory / "run")
    assert verdict.usable and "booted" in verdict.reason
    assert accel.choose("auto", binary, kernel, directory / "run") == "kvm"
    assert probes_run(directory) == 1  # remembered by the process


def test_the_verdict_is_remembered_on_disk(machine, monkeypatch) -> None:
    directory, kernel = machine
    binary = fake_qemu(directory, "boots")
    accel.kvm_verdict(binary, kernel, directory / "run")
    monkeypatch.setattr(accel, "_verdicts", {})  # as in a new daemon process
    assert accel.kvm_verdict(binary, kernel, directory / "run").usable
    assert probes_run(directory) == 1
    kernel.write_bytes(b"another kernel")  # a different kernel is probed again
    accel.kvm_verdict(binary, kernel, directory / "run")
    assert probes_run(directory) == 2


def test_a_failing_kvm_falls_back_to_tcg_and_says_why(machine) -> None:
    directory, kernel = machine
    binary = fake_qemu(directory, "fails")
    verdict = accel.kvm_verdict(binary, kernel, directory / "run")
    assert not verdict.usable and "failed to set MSR" in verdict.reason
    assert accel.choose("auto", binary, kernel, directory / "run") == "tcg"
    with pytest.raises(UserError, match="KVM is unusable here: .*MSR"):
        accel.choose("kvm", binary, kernel, directory / "run")


def test_a_hanging_kvm_guest_is_given_up_on(machine, monkeypatch) -> None:
    directory, kernel = machine
    monkeypatch.setattr(accel, "PROBE_TIMEOUT", 0.5)
    verdict = accel.kvm_verdict(fake_qemu(directory, "hangs"), kernel, directory / "run")
    assert not verdict.usable and "did not boot" in verdict.reason


def test_tcg_is_taken_without_probing(machine) -> None:
    directory, kernel = machine
    binary = fake_qemu(directory, "boots")
    assert accel.choose("tcg", binary, kernel, directory / "run") == "tcg"
    assert probes_run(directory) == 0


def test_no_kvm_device_needs_no_probe(machine, monkeypatch) -> None:
    directory, kernel = machine
    monkeypatch.setattr(accel, "KVM_DEVICE", directory / "absent")
    verdict = accel.kvm_verdict(fake_qemu(directory, "boots"), kernel, directory / "run")
    assert verdict == accel.Verdict(False, "no /dev/kvm") and probes_run(directory) == 0


def test_unknown_setting_is_refused(machine) -> None:
    directory, kernel = machine
    with pytest.raises(UserError, match="auto, kvm or tcg"):
        accel.choose("hvf", "qemu", kernel, directory / "run")


def test_a_copy_of_the_kernel_elsewhere_is_not_probed_again(machine, monkeypatch) -> None:
    # Every guest image build puts the same Debian kernel at a new path.
    directory, kernel = machine
    binary = fake_qemu(directory, "boots")
    accel.kvm_verdict(binary, kernel, directory / "cache")
    monkeypatch.setattr(accel, "_verdicts", {})  # a new daemon
    copy = directory / "another-image" / "vmlinux"
    copy.parent.mkdir()
    copy.write_bytes(kernel.read_bytes())
    assert accel.kvm_verdict(binary, copy, directory / "cache").usable
    assert probes_run(directory) == 1

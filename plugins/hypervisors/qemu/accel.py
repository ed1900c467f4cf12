"""KVM or TCG: decided by trying, because /dev/kvm can exist and still fail.

A nested or paravirtual KVM may open, create VMs, run a BIOS and then die or
spin forever in the guest kernel (this project's CI machine does). So the
probe boots the very kernel the VMs will boot, without an initrd: reaching
"Kernel panic ... VFS: Unable to mount root fs" proves the CPU model works
through the kernel's whole early boot. The verdict is remembered for the
process and, in the cache root, for this host boot (keyed by boot id, QEMU
binary and kernel), so only the first VM after a reboot pays for it, whichever
daemon starts it.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import selectors
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from hypercontainer.errors import UserError
from hypercontainer.log import get_logger

KVM_DEVICE = Path("/dev/kvm")
MARKER = b"Kernel panic"  # reached only after the kernel's early boot worked
PROBE_TIMEOUT = 20.0  # a working KVM gets there in well under a second
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")

log = get_logger(component="qemu")


@dataclass(frozen=True)
class Verdict:
    usable: bool
    reason: str  # why not, or how it was established


_verdicts: dict[str, Verdict] = {}
_lock = threading.Lock()


def _boot_id() -> str:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return "unknown-boot"


@functools.lru_cache(maxsize=16)
def _kernel_digest(path: str, size: int, mtime_ns: int) -> str:
    """The kernel by content: every guest image build copies the same kernel to a new
    path, and none of those copies needs a probe of its own."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def _key(binary: str, kernel: Path) -> str:
    stat = kernel.stat()
    return f"{_boot_id()} {binary} {_kernel_digest(str(kernel), stat.st_size, stat.st_mtime_ns)}"


def kvm_verdict(binary: str, kernel: Path, remember_in: Path) -> Verdict:
    """Whether QEMU can boot `kernel` with KVM here (probing at most once per boot, for
    every daemon of the machine: concurrent first asks wait for one probe)."""
    if not os.access(KVM_DEVICE, os.R_OK | os.W_OK):
        reason = "no /dev/kvm" if not KVM_DEVICE.exists() else "/dev/kvm is not accessible"
        return Verdict(False, reason)
    key = _key(binary, kernel)
    with _lock:
        if key in _verdicts:
            return _verdicts[key]
        remembered = remember_in / "qemu-kvm-probe.json"
        remember_in.mkdir(parents=True, exist_ok=True)
        with open(remember_in / ".qemu-kvm-probe.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            verdict = _load(remembered).get(key)
            if verdict is None:
                verdict = _probe(binary, kernel)
                _save(remembered, key, verdict)
        # Once per process: the verdict (and so the fallback to TCG) is worth one line.
        log.info(
            "kvm usable" if verdict.usable else "kvm unusable, qemu falls back to tcg",
            reason=verdict.reason,
        )
        _verdicts[key] = verdict
        return verdict


def cached_verdict() -> Verdict | None:
    """The verdict of this process's last probe, for describe()."""
    with _lock:
        return next(reversed(_verdicts.values()), None)


def _load(path: Path) -> dict[str, Verdict]:
    """The verdicts remembered for this host boot, by key."""
    try:
        saved = json.loads(path.read_text())
        return {
            key: Verdict(**verdict)
            for key, verdict in saved.items()
            if key.startswith(_boot_id() + " ")
        }
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def _save(path: Path, key: str, verdict: Verdict) -> None:
    verdicts = {**_load(path), key: verdict}
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps({k: asdict(v) for k, v in verdicts.items()}))
    temporary.replace(path)


def _probe(binary: str, kernel: Path) -> Verdict:
    argv = [
        binary,
        "-accel",
        "kvm",
        "-cpu",
        "host",
        "-m",
        "128",
        "-smp",
        "1",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-serial",
        "stdio",
        "-kernel",
        str(kernel),
        "-append",
        "console=ttyS0 panic=-1 quiet",
    ]
    started = time.monotonic()
    probe = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert probe.stdout is not None
    output = b""
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(probe.stdout, selectors.EVENT_READ)
            while MARKER not in output:
                left = PROBE_TIMEOUT - (time.monotonic() - started)
                if left <= 0 or not selector.select(left):
                    return Verdict(False, f"a KVM guest kernel did not boot in {PROBE_TIMEOUT:g} s")
                chunk = os.read(probe.stdout.fileno(), 65536)
                if not chunk:
                    last = output.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
                    return Verdict(False, f"qemu with KVM failed: {last[0][:200]}")
                output = (output + chunk)[-65536:]
        return Verdict(True, f"a KVM guest kernel booted in {time.monotonic() - started:.1f} s")
    finally:
        probe.kill()
        probe.wait()
        probe.stdout.close()


def choose(setting: str, binary: str, kernel: Path, remember_in: Path) -> str:
    """The accelerator to use for a VM: "kvm" or "tcg"."""
    if setting not in ("auto", "kvm", "tcg"):
        raise UserError(f"qemu.accelerator {setting!r}: must be auto, kvm or tcg")
    if setting == "tcg":
        return "tcg"
    verdict = kvm_verdict(binary, kernel, remember_in)
    if verdict.usable:
        return "kvm"
    if setting == "kvm":
        raise UserError(f"qemu.accelerator is kvm, but KVM is unusable here: {verdict.reason}")
    return "tcg"

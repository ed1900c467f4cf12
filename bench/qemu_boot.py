"""Boot time and memory of a pod VM under the QEMU driver (not a test: numbers only).

    python bench/qemu_boot.py [runs]

For each run: a 128 MB, 1 vCPU VM with the cached guest image, timed from the
driver's start() to console markers (init started, init execs the agent, the
agent serves); then, idle, the QEMU process's PSS from /proc/<pid>/smaps_rollup.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from hypercontainer.config import load
from hypercontainer.drivers import VMSpec
from hypercontainer.guest.image import ensure_image
from hypercontainer_plugins.hypervisors.qemu import QemuHypervisor

MARKERS = {"init": "hc-init: started", "exec": "hc-init: exec agent", "agent": "serving transport="}
IDLE_SECONDS = 5.0


def pss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise RuntimeError("no Pss line")


def one_boot(driver: QemuHypervisor, image, root: Path) -> dict[str, float]:
    run_dir = Path(tempfile.mkdtemp(prefix="b-", dir=root))
    spec = VMSpec(
        pod_id=run_dir.name,
        vm_name=run_dir.name,
        vcpus=1,
        memory_mb=128,
        kernel=image.kernel,
        initrd=image.initrd,
        kernel_args=image.kernel_args,
        run_dir=run_dir,
        console_log=root / f"{run_dir.name}.log",
    )
    started = time.monotonic()
    handle = driver.start(spec)
    seen: dict[str, float] = {"qemu_up": time.monotonic() - started}
    try:
        while len(seen) <= len(MARKERS):
            console = spec.console_log.read_text(errors="replace")
            for name, marker in MARKERS.items():
                if name not in seen and marker in console:
                    seen[name] = time.monotonic() - started
            if "FAILED" in console or time.monotonic() - started > 120:
                raise RuntimeError(console[-2000:])
            time.sleep(0.02)
        time.sleep(IDLE_SECONDS)
        seen["pss_mib"] = pss_kib(handle["pid"]) / 1024
    finally:
        driver.stop(handle, timeout=0.5)
        driver.cleanup(handle)
    return seen


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    root = Path(tempfile.mkdtemp(prefix="hcb-", dir="/tmp"))
    config = load().model_copy(update={"run_root": root})
    image = ensure_image(config)
    driver = QemuHypervisor(config)
    try:
        results = [one_boot(driver, image, root) for _ in range(runs)]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"initrd: {image.initrd.stat().st_size / 2**20:.1f} MiB gzip; "
        f"load average {os.getloadavg()[0]:.2f}; {runs} runs, median (min-max):"
    )
    for key in results[0]:
        values = [r[key] for r in results]
        unit = " MiB" if key == "pss_mib" else " s"
        print(
            f"  {key:8} {statistics.median(values):6.2f}{unit} "
            f"({min(values):.2f}-{max(values):.2f})"
        )


if __name__ == "__main__":
    main()

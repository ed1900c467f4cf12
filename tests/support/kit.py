"""Running the conformance kit (`pytest -p hypercontainer.testing`) as a plugin author does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_kit(
    cwd: Path,
    *selections: str,
    config: str | None = None,
    wrap: tuple[str, ...] = (),
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """pytest -p hypercontainer.testing --hc-driver SELECTION... in `cwd` (no tests of its own);
    a selection starting with "-" is passed as an option.

    `config` is the text of a hypercontainer configuration for the drivers' settings;
    `wrap` a command to run pytest under (e.g. `unshare --net`).
    """
    argv = [
        *wrap,
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "hypercontainer.testing",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rs",
    ]
    if config is not None:
        (cwd / "hc-kit.toml").write_text(config)
        argv.append(f"--hc-config={cwd / 'hc-kit.toml'}")
    argv += [s if s.startswith("-") else f"--hc-driver={s}" for s in selections]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def dummy_guest(directory: Path) -> str:
    """A [guest] table naming empty kernel and initrd files (for the fake hypervisor)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("vmlinuz", "initrd.img"):
        (directory / name).touch()
    return f'[guest]\nkernel = "{directory / "vmlinuz"}"\ninitrd = "{directory / "initrd.img"}"\n'

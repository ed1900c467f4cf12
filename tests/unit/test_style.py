"""House style, mechanical: ruff's lint rules and formatting, and mypy over core/ and
plugins/ (all configured in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(*args: str, **options) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        **options,
    )


def test_mypy_finds_no_error_in_core_and_plugins(tmp_path):
    done = run("mypy", "--cache-dir", str(tmp_path / "cache"))
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert done.stdout.startswith("Success: no issues found")


def test_ruff_lint_and_format_are_clean():
    lint = run("ruff", "check", "--no-cache", "core", "plugins", "tests")
    assert lint.returncode == 0, lint.stdout[-6000:]
    formatted = run("ruff", "format", "--check", "--no-cache", ".")
    assert formatted.returncode == 0, formatted.stdout[-6000:]

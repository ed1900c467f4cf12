"""Shell completion and `hyperctl help`, both generated from the parser."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from hypercontainer.cli import completion
from hypercontainer.cli.main import build_parser

HYPERCTL = [sys.executable, "-m", "hypercontainer.cli.main"]


def complete(tmp_path, *words: str) -> list[str]:
    """What bash offers for the last of `words`, with hyperctl's completion loaded.
    A stand-in `hyperctl` on PATH answers the name lookups."""
    script = tmp_path / "hyperctl.bash"
    script.write_text(completion.bash(build_parser()))
    stub = tmp_path / "bin" / "hyperctl"
    stub.parent.mkdir(exist_ok=True)
    stub.write_text(
        '#!/bin/sh\ncase "$*" in "list -q") echo pod-a; echo pod-b;; '
        '"images "*) echo busybox:latest;; *) echo container-c;; esac\n'
    )
    stub.chmod(0o755)
    (tmp_path / "podfile.json").write_text("{}")
    words_array = " ".join(f"'{w}'" for w in ("hyperctl", *words))
    run = (
        f"source {script}; COMP_WORDS=({words_array}); COMP_CWORD={len(words)};"
        ' _hyperctl; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    result = subprocess.run(
        ["bash", "-c", run],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={"PATH": f"{stub.parent}:/usr/bin:/bin"},
    )
    return sorted(filter(None, result.stdout.splitlines()))


def test_bash_completes_verbs_options_choices_files_and_names(tmp_path):
    assert complete(tmp_path, "ru") == ["run"]
    assert complete(tmp_path, "--config", "x.toml", "ev") == ["events"]
    assert complete(tmp_path, "run", "--r") == ["--restart", "--rm"]
    assert complete(tmp_path, "list", "") == ["container", "pod", "vm"]
    assert complete(tmp_path, "run", "-p", "pod") == ["podfile.json"]
    assert complete(tmp_path, "pause", "pod-") == ["pod-a", "pod-b"]
    assert complete(tmp_path, "logs", "cont") == ["container-c"]
    assert complete(tmp_path, "run", "busy") == ["busybox:latest"]
    assert complete(tmp_path, "logs", "--since", "") == []  # a value, not a name


def test_every_verb_and_option_of_the_parser_is_in_both_scripts():
    parser = build_parser()
    bash, zsh = completion.bash(parser), completion.zsh(parser)
    for verb in completion.verbs(parser):
        assert f"        {verb.name}) opts=" in bash
        assert f"        {verb.name}) _arguments" in zsh
        for names, _, _ in verb.flags:
            assert all(name in bash for name in names)
    assert "--timestamps" in zsh and "'1:list:(pod container vm)'" in zsh


@pytest.mark.skipif(not shutil.which("zsh"), reason="zsh is not installed")
def test_zsh_loads_the_script(tmp_path):
    script = tmp_path / "_hyperctl"
    script.write_text(completion.zsh(build_parser()))
    check = (
        f"autoload -Uz compinit && compinit -u -d {tmp_path}/dump && source {script}"
        " && whence -w _hyperctl && print ${_comps[hyperctl]}"
    )
    result = subprocess.run(
        ["zsh", "-f", "-c", check],
        capture_output=True,
        text=True,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["_hyperctl:", "function", "_hyperctl"]


def test_help_is_the_parsers_own_text():
    for verb in ("run", "inspect", "ports"):
        helped = subprocess.run([*HYPERCTL, "help", verb], capture_output=True, text=True)
        direct = subprocess.run([*HYPERCTL, verb, "--help"], capture_output=True, text=True)
        assert helped.returncode == direct.returncode == 0
        assert helped.stdout == direct.stdout and f"usage: hyperctl {verb}" in helped.stdout
    unknown = subprocess.run([*HYPERCTL, "help", "teleport"], capture_output=True, text=True)
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("hyperctl ERROR: no command 'teleport'; commands: run,")

"""Debian packages from this host's own apt sources, fetched, never installed.

`apt-cache` tells which version each package would be (its candidate), so the
image can be keyed by exact versions before anything is downloaded; those exact
versions are then fetched with `apt-get download` and unpacked with
`dpkg-deb -x` into a directory of our choosing.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import DriverError, UserError

APT_LISTS = Path("/var/lib/apt/lists")


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    depends: str = ""  # the raw Depends: field


def _run(argv: list[str], cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "LC_ALL": "C"},
        )
    except FileNotFoundError:
        raise UserError(f"{argv[0]} not found: building the guest image needs apt") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no error output"])[-1]
        raise DriverError(f"{' '.join(argv[:3])}...: {last}")
    return done.stdout


def candidates(names: list[str]) -> dict[str, Package]:
    """The version apt would install of each package (one apt-cache call)."""
    found: dict[str, Package] = {}
    try:
        output = _run(["apt-cache", "show", "--no-all-versions", *names])
    except DriverError:
        output = ""  # some name is unknown: reported below, by name
    for stanza in output.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " "
        )
        if "Package" in fields and fields["Package"] in names:
            found.setdefault(
                fields["Package"],
                Package(fields["Package"], fields["Version"], fields.get("Depends", "")),
            )
    missing = [name for name in names if name not in found]
    if missing:
        raise UserError(
            f"package {', '.join(missing)} not known to apt (is the name right? "
            "has `apt-get update` run?)"
        )
    return found


def first_dependency(package: Package) -> str:
    """The first package named in Depends, e.g. the kernel a metapackage pulls in."""
    first = package.depends.split(",")[0].split("|")[0].strip()
    return first.split(" ")[0]


def download(packages: list[Package], into: Path) -> dict[str, Path]:
    """Fetch exactly these versions into `into`; the .deb file of each package."""
    into.mkdir(parents=True, exist_ok=True)
    argv = ["apt-get", "download", "-q"]
    if os.geteuid() == 0:
        # apt would otherwise drop to the _apt user, who cannot write into our temp dir.
        argv += ["-o", "APT::Sandbox::User=root"]
    _run(argv + [f"{p.name}={p.version}" for p in packages], cwd=into)
    debs: dict[str, Path] = {}
    for package in packages:
        matches = sorted(into.glob(f"{package.name}_*.deb"))
        if not matches:
            raise DriverError(f"apt-get download left no .deb for {package.name}")
        debs[package.name] = matches[0]
    return debs


def extract(deb: Path, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    _run(["dpkg-deb", "-x", str(deb), str(into)])


def lists_fingerprint() -> str:
    """Changes whenever `apt-get update` brings new package lists."""
    digest = hashlib.sha256()
    if APT_LISTS.is_dir():
        for path in sorted(APT_LISTS.iterdir()):
            if path.is_file():
                stat = path.stat()
                digest.update(f"{path.name} {stat.st_size} {stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()

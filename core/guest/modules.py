"""Kernel modules: which files to load, dependencies first.

A module's dependencies are read from its own `.modinfo` ELF section (the
`depends=` and `softdep=` keys), so neither depmod nor modinfo has to be
installed on the host.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DriverError
from .elf import section


def read_modinfo(path: Path) -> dict[str, list[str]]:
    """The key=value pairs of a module's .modinfo section (a key may repeat)."""
    data = section(path.read_bytes(), ".modinfo")
    if data is None:
        raise DriverError(f"{path}: not a kernel module (no .modinfo section)")
    info: dict[str, list[str]] = {}
    for entry in data.split(b"\0"):
        key, sep, value = entry.decode(errors="replace").partition("=")
        if sep:
            info.setdefault(key, []).append(value)
    return info


def _canonical(name: str) -> str:
    return name.replace("-", "_")


def _softdeps_before(info: dict[str, list[str]]) -> list[str]:
    # "softdep=pre: crc32c post: foo": only "pre" modules must load first.
    wanted: list[str] = []
    for spec in info.get("softdep", []):
        phase = None
        for word in spec.split():
            if word.endswith(":"):
                phase = word[:-1]
            elif phase == "pre":
                wanted.append(word)
    return wanted


class ModuleTree:
    """The modules of one unpacked kernel: /lib/modules/<release>."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = {_canonical(path.name.split(".ko")[0]): path for path in root.rglob("*.ko*")}
        self._aliases: dict[str, str] | None = None
        builtin = root / "modules.builtin"
        self.builtin = {
            _canonical(Path(line).name.split(".ko")[0])
            for line in (builtin.read_text().split() if builtin.exists() else [])
        }

    def crypto_aliases(self) -> dict[str, str]:
        """Soft dependencies often name a crypto algorithm ("crypto-crc32c"), not a module."""
        if self._aliases is None:
            self._aliases = {}
            for name, path in sorted(self.files.items()):
                if "crypto" in path.parent.name:
                    for alias in read_modinfo(path).get("alias", []):
                        self._aliases.setdefault(alias, name)
        return self._aliases

    def load_order(self, wanted: list[str]) -> list[Path]:
        """Module files to insmod, each after everything it depends on."""
        order: list[Path] = []
        visiting: set[str] = set()
        done: set[str] = set()

        def visit(name: str, required: bool) -> None:
            if not required:
                name = self.crypto_aliases().get(name, name)
            name = _canonical(name)
            if name in done or name in self.builtin:
                return
            if name not in self.files:
                if required:
                    raise DriverError(f"kernel module {name} not found under {self.root}")
                return  # a soft dependency the kernel may not have
            if name in visiting:
                raise DriverError(f"kernel module dependency cycle through {name}")
            visiting.add(name)
            info = read_modinfo(self.files[name])
            for dep in ",".join(info.get("depends", [])).split(","):
                if dep:
                    visit(dep, required=True)
            for dep in _softdeps_before(info):
                visit(dep, required=False)
            visiting.discard(name)
            done.add(name)
            order.append(self.files[name])

        for name in wanted:
            visit(name, required=True)
        return order

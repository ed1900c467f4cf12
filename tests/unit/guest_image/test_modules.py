"""Kernel module load order, read from modules' own .modinfo sections."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypercontainer.errors import DriverError
from hypercontainer.guest.modules import ModuleTree, read_modinfo


def fake_module(path: Path, **info: str) -> None:
    """A minimal ELF64 file whose only real section is .modinfo."""
    modinfo = b"".join(f"{k}={v}".encode() + b"\0" for k, v in info.items())
    names = b"\0.modinfo\0.shstrtab\0"
    data_offset = 64
    names_offset = data_offset + len(modinfo)
    shoff = names_offset + len(names)
    header = b"\x7fELF" + bytes([2, 1, 1]) + b"\0" * 9
    header += struct.pack("<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64, 3, 2)
    null = b"\0" * 64
    section = struct.pack("<IIQQQQIIQQ", 1, 1, 0, 0, data_offset, len(modinfo), 0, 0, 1, 0)
    strtab = struct.pack("<IIQQQQIIQQ", 10, 3, 0, 0, names_offset, len(names), 0, 0, 1, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + modinfo + names + null + section + strtab)


@pytest.fixture
def tree(tmp_path: Path) -> ModuleTree:
    root = tmp_path / "lib/modules/6.1.0-test"
    fake_module(root / "kernel/virtio.ko", depends="")
    fake_module(root / "kernel/virtio_ring.ko", depends="")
    fake_module(root / "kernel/virtio_pci.ko", depends="virtio,virtio_ring")
    fake_module(root / "kernel/fs/ext4.ko", depends="crc16", softdep="pre: crypto-crc32c")
    fake_module(root / "kernel/lib/crc16.ko", depends="")
    fake_module(root / "kernel/crypto/crc32c_generic.ko", alias="crypto-crc32c")
    fake_module(root / "kernel/loop-a.ko", depends="loop_b")
    fake_module(root / "kernel/loop_b.ko", depends="loop-a")
    (root / "modules.builtin").write_text("kernel/builtin_thing.ko\n")
    return ModuleTree(root)


def names(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def test_dependencies_come_first_once(tree: ModuleTree) -> None:
    assert names(tree.load_order(["virtio_pci", "virtio"])) == [
        "virtio.ko",
        "virtio_ring.ko",
        "virtio_pci.ko",
    ]


def test_soft_dependencies_by_crypto_alias(tree: ModuleTree) -> None:
    assert names(tree.load_order(["ext4"])) == ["crc16.ko", "crc32c_generic.ko", "ext4.ko"]


def test_builtin_modules_need_no_file(tree: ModuleTree) -> None:
    assert tree.load_order(["builtin_thing"]) == []


def test_missing_modules_and_cycles_are_errors(tree: ModuleTree) -> None:
    with pytest.raises(DriverError, match="not found"):
        tree.load_order(["nonexistent"])
    with pytest.raises(DriverError, match="cycle"):
        tree.load_order(["loop_a"])


def test_a_file_that_is_not_a_module_is_an_error(tmp_path: Path) -> None:
    bogus = tmp_path / "x.ko"
    bogus.write_bytes(b"not an elf")
    with pytest.raises(DriverError, match="not a kernel module"):
        read_modinfo(bogus)

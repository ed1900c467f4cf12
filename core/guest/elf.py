"""Just enough ELF64 reading to find a named section (kernel modules, vmlinux)."""

from __future__ import annotations

import struct


def section(data: bytes, wanted: str) -> bytes | None:
    """The contents of section `wanted` of a little-endian ELF64 file, or None."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:  # ELFCLASS64, little-endian
        return None
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def header(index: int) -> tuple[int, int, int]:
        name, _type, _flags, _addr, offset, size = struct.unpack_from(
            "<IIQQQQ", data, shoff + index * shentsize
        )
        return name, offset, size

    _, names, _ = header(shstrndx)
    for index in range(shnum):
        name, offset, size = header(index)
        end = data.index(b"\0", names + name)
        if data[names + name : end].decode(errors="replace") == wanted:
            return data[offset : offset + size]
    return None


def notes(data: bytes) -> list[tuple[str, int, bytes]]:
    """(owner, type, descriptor) of each entry of an ELF note section."""
    found = []
    offset = 0
    while offset + 12 <= len(data):
        namesz, descsz, kind = struct.unpack_from("<III", data, offset)
        offset += 12
        owner = data[offset : offset + namesz].rstrip(b"\0").decode(errors="replace")
        offset += (namesz + 3) & ~3
        found.append((owner, kind, data[offset : offset + descsz]))
        offset += (descsz + 3) & ~3
    return found

"""The guest kernel: which Debian package, and the form QEMU boots fastest.

Debian ships an xz-compressed bzImage. Under TCG the guest spends seconds
decompressing it (6.3 s before the first kernel message, measured), so the
builder unpacks it once into the plain `vmlinux` ELF, which QEMU and Cloud
Hypervisor boot directly through its PVH entry point (0.7 s).
"""

from __future__ import annotations

import lzma
import re
import zlib
from pathlib import Path

from ..errors import UserError
from . import apt
from .elf import notes, section

METAPACKAGE = "linux-image-amd64"
_PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]{1,100}$")  # Debian policy 5.6.1
_XEN_ELFNOTE_PHYS32_ENTRY = 18  # the PVH entry point


def package_name(configured: str | None) -> str:
    """The kernel package to use: the configured one or the metapackage's choice."""
    if configured is not None:
        if not _PACKAGE_NAME.match(configured) or not configured.startswith("linux-image-"):
            raise UserError(
                f"guest.kernel_package {configured!r} is not a Debian kernel package name "
                "(e.g. linux-image-6.1.0-47-amd64)"
            )
        return configured
    return apt.first_dependency(apt.candidates([METAPACKAGE])[METAPACKAGE])


def release(unpacked: Path) -> str:
    """The kernel release of an unpacked package (its /lib/modules directory)."""
    releases = sorted(p.name for p in (unpacked / "lib/modules").iterdir() if p.is_dir())
    if len(releases) != 1:
        raise UserError(f"kernel package holds {len(releases)} module trees, expected one")
    return releases[0]


def bzimage(unpacked: Path, kernel_release: str) -> Path:
    path = unpacked / "boot" / f"vmlinuz-{kernel_release}"
    if not path.is_file():
        raise UserError(f"kernel package has no boot/vmlinuz-{kernel_release}")
    return path


def has_pvh_entry(elf: bytes) -> bool:
    found = section(elf, ".notes")
    return found is not None and any(
        owner == "Xen" and kind == _XEN_ELFNOTE_PHYS32_ENTRY for owner, kind, _ in notes(found)
    )


def _payloads(image: bytes):
    """Candidate decompressions of the kernel inside a bzImage, by compression magic."""
    xz = image.find(b"\xfd7zXZ\x00")
    if xz >= 0:
        yield lambda: lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(image[xz:])
    gz = image.find(b"\x1f\x8b\x08")
    if gz >= 0:  # wbits=31: one gzip member, the bytes after it are ignored
        yield lambda: zlib.decompressobj(wbits=31).decompress(image[gz:])


def unpack_vmlinux(bzimage_path: Path) -> bytes | None:
    """The bootable ELF inside a bzImage, or None (then boot the bzImage itself)."""
    image = bzimage_path.read_bytes()
    for decompress in _payloads(image):
        try:
            elf = decompress()
        except (lzma.LZMAError, zlib.error):
            continue
        if has_pvh_entry(elf):
            return elf
    return None

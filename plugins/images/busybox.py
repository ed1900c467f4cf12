"""An offline busybox image, made from the host's busybox-static.

    python -m hypercontainer_plugins.images.busybox OUT.tar [--tag busybox:latest]

writes an OCI archive for `hyperctl load -i OUT.tar`: /bin/busybox, a symlink
per applet (as `busybox --list-full` lists them), a minimal /etc/passwd and
/etc/group, and the usual empty directories. The same input gives the same
digests.
"""

from __future__ import annotations

import argparse
import datetime
import shutil
import struct
import subprocess
import sys
from pathlib import Path

from hypercontainer.errors import UserError

from .build import Image, Layer, write_archive
from .reference import parse

PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
GROUP = b"root:x:0:\nnobody:x:65534:\n"
DIRS = {
    "bin": 0o755,
    "sbin": 0o755,
    "usr": 0o755,
    "usr/bin": 0o755,
    "usr/sbin": 0o755,
    "etc": 0o755,
    "dev": 0o755,
    "proc": 0o555,
    "sys": 0o555,
    "run": 0o755,
    "root": 0o700,
    "home": 0o755,
    "tmp": 0o1777,
    "var": 0o755,
    "var/tmp": 0o1777,
}
PT_INTERP = 3


def find_busybox() -> Path:
    """The host's statically linked busybox (Debian package busybox-static)."""
    found = shutil.which("busybox", path="/bin:/usr/bin:/sbin:/usr/sbin")
    if not found or not is_static(Path(found)):
        raise UserError("no statically linked busybox found; install Debian's busybox-static")
    return Path(found)


def is_static(path: Path) -> bool:
    """True for a 64-bit little-endian ELF without a program interpreter."""
    with path.open("rb") as f:
        header = f.read(64)
        if header[:6] != b"\x7fELF\x02\x01":
            return False
        (phoff,) = struct.unpack_from("<Q", header, 32)
        phentsize, phnum = struct.unpack_from("<HH", header, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    types = [struct.unpack_from("<I", table, i * phentsize)[0] for i in range(phnum)]
    return PT_INTERP not in types


def applets(binary: Path) -> list[str]:
    """Applet paths relative to /, e.g. bin/ls, usr/bin/awk."""
    listing = subprocess.run(
        [str(binary), "--list-full"], check=True, capture_output=True, text=True
    ).stdout
    return sorted({line.strip().lstrip("/") for line in listing.splitlines() if line.strip()})


def rootfs_layer(binary: Path | None = None) -> Layer:
    """The one layer of the busybox image (tests build on it too)."""
    binary = binary or find_busybox()
    layer = Layer()
    for directory, mode in DIRS.items():
        layer.dir(directory, mode)
    layer.file("bin/busybox", binary.read_bytes(), 0o755)
    layer.file("etc/passwd", PASSWD).file("etc/group", GROUP)
    for applet in applets(binary):
        parent = applet.rpartition("/")[0]
        if applet != "bin/busybox" and (not parent or parent in DIRS):
            layer.symlink(applet, "/bin/busybox")
    return layer


def image(binary: Path | None = None) -> Image:
    binary = binary or find_busybox()
    mtime = binary.stat().st_mtime
    created = datetime.datetime.fromtimestamp(int(mtime), datetime.UTC)
    return Image(
        layers=[rootfs_layer(binary)],
        cmd=["sh"],
        created=created.isoformat().replace("+00:00", "Z"),
    )


def write(out: Path, tag: str = "busybox:latest") -> str:
    """Write the archive; returns the image's full name."""
    name = str(parse(tag))
    top, blobs = image().build()
    write_archive(out, [(name, top, blobs)])
    return name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hypercontainer_plugins.images.busybox",
        description="Write an offline busybox image as an OCI archive.",
    )
    parser.add_argument("out", type=Path, help="archive to write, e.g. busybox.tar")
    parser.add_argument("--tag", default="busybox:latest", help="name of the image")
    args = parser.parse_args(argv)
    try:
        name = write(args.out, args.tag)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{args.out}: {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

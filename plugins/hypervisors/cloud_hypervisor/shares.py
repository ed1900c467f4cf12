"""A pod's shares as Cloud Hypervisor devices: virtio-fs, else ext4 disk images.

Everything a share needs on the host lives in the pod's run directory, named
after the tag, so that release() finds it again even in a restarted daemon.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hypercontainer.drivers import Share
from hypercontainer.errors import UserError

from . import ext4_image
from .process import Process
from .virtiofs import Virtiofsd, fs_config

VIRTIOFS = "virtiofs"
DISK = "disk"

# The tag names host files and is a virtio-blk serial (20 bytes at most).
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,19}")


def check_tags(shares: Iterable[Share]) -> None:
    seen: set[str] = set()
    for share in shares:
        if not TAG.fullmatch(share.tag):
            raise UserError(
                f"share tag {share.tag[:40]!r}: use 1-20 letters, digits, '_', '.', '-'"
            )
        if share.tag in seen:
            raise UserError(f"share tag {share.tag!r} is used twice")
        seen.add(share.tag)


class ShareDevices:
    """Prepares shares for one pod, in `run_dir`."""

    def __init__(self, run_dir: Path, virtiofsd: Virtiofsd | None) -> None:
        self.run_dir = run_dir
        self.virtiofsd = virtiofsd

    @property
    def mode(self) -> str:
        return VIRTIOFS if self.virtiofsd else DISK

    def check(self, shares: Iterable[Share]) -> None:
        """Refuse, before anything starts, what this mode cannot do."""
        shares = list(shares)
        check_tags(shares)
        if self.mode == DISK:
            for share in shares:
                if not share.readonly:
                    raise UserError(
                        f"share {share.tag}: a writable share needs virtio-fs "
                        "(install virtiofsd); a disk image copy would lose the guest's writes"
                    )

    def prepare(self, share: Share) -> dict[str, Any]:
        """Start what serves the share; returns its FsConfig or DiskConfig."""
        if self.virtiofsd:
            socket_path = self._path(share.tag, "fs-{}.sock")
            process = self.virtiofsd.start(
                share, socket_path, self._path(share.tag, "virtiofsd-{}.log")
            )
            self._path(share.tag, "virtiofsd-{}.pid").write_text(json.dumps(process.record()))
            return fs_config(share, socket_path)
        image = self._path(share.tag, "share-{}.img")
        ext4_image.build(share, image)
        return ext4_image.disk_config(share, image)

    def release(self, tag: str, grace: float = 5.0) -> None:
        """Stop what serves one share and remove its files."""
        pidfile = self._path(tag, "virtiofsd-{}.pid")
        if pidfile.exists():
            try:
                Process.from_record(json.loads(pidfile.read_text())).terminate(grace)
            except (ValueError, KeyError):
                pass  # a damaged pid file: nothing we could safely signal
        for pattern in ("fs-{}.sock", "virtiofsd-{}.pid", "virtiofsd-{}.log", "share-{}.img"):
            self._path(tag, pattern).unlink(missing_ok=True)

    def release_all(self, grace: float = 5.0) -> None:
        tags = {
            path.name[len(prefix) : -len(suffix)]
            for prefix, suffix in (("virtiofsd-", ".pid"), ("fs-", ".sock"), ("share-", ".img"))
            for path in self.run_dir.glob(f"{prefix}*{suffix}")
        }
        for tag in tags:
            if TAG.fullmatch(tag):
                self.release(tag, grace)

    def _path(self, tag: str, pattern: str) -> Path:
        return self.run_dir / pattern.format(tag)

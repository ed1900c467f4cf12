"""virtio-fs shares: one virtiofsd per share, each behind a vhost-user socket.

We bind and listen on the vhost-user socket ourselves and hand virtiofsd the
listening descriptor (`--fd`), so the socket is ready before the VMM needs it:
nothing to wait for. Two virtiofsd exist: QEMU's C one (Debian ships it as
/usr/lib/qemu/virtiofsd) and the Rust one; their options differ a little.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypercontainer.drivers import Share
from hypercontainer.errors import DriverError

from .process import Process

# Where distributions put virtiofsd when it is not on PATH.
KNOWN_LOCATIONS = (Path("/usr/libexec/virtiofsd"), Path("/usr/lib/qemu/virtiofsd"))
DEFAULT_NAME = "virtiofsd"
QUEUE_SIZE = 1024


def find_virtiofsd(configured: str) -> Path | None:
    """The virtiofsd binary to use, or None when there is none."""
    if "/" in configured:
        path = Path(configured)
        return path if os.access(path, os.X_OK) else None
    found = shutil.which(configured)
    if found:
        return Path(found)
    if configured == DEFAULT_NAME:
        return next((p for p in KNOWN_LOCATIONS if os.access(p, os.X_OK)), None)
    return None


@dataclass(frozen=True)
class Virtiofsd:
    binary: Path
    rust: bool  # the Rust virtiofsd (--shared-dir) rather than QEMU's C one (-o source=)
    has_readonly: bool

    @classmethod
    def probe(cls, binary: Path) -> Virtiofsd:
        try:
            result = subprocess.run(
                [str(binary), "--help"], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise DriverError(f"{binary} --help failed: {e}") from e
        usage = result.stdout + result.stderr
        return cls(binary, rust="--shared-dir" in usage, has_readonly="--readonly" in usage)

    def argv(self, fd: int, share: Share) -> list[str]:
        if self.rust:
            argv = [
                str(self.binary),
                f"--fd={fd}",
                f"--shared-dir={share.host_path}",
                "--cache=auto",
                "--sandbox=namespace",
            ]
            if share.readonly and self.has_readonly:
                argv.append("--readonly")
            return argv
        return [
            str(self.binary),
            f"--fd={fd}",
            "-o",
            f"source={share.host_path}",
            "-o",
            "cache=auto",
        ]

    def start(self, share: Share, socket_path: Path, log: Path) -> Process:
        """Serve `share` on a vhost-user socket at `socket_path`."""
        socket_path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(socket_path))
            listener.listen(1)
            return Process.spawn(
                self.argv(listener.fileno(), share), log, pass_fds=[listener.fileno()]
            )
        except OSError as e:
            socket_path.unlink(missing_ok=True)
            raise DriverError(f"cannot start virtiofsd for share {share.tag}: {e}") from e
        finally:
            listener.close()  # virtiofsd holds its own copy


def fs_config(share: Share, socket_path: Path) -> dict[str, Any]:
    """The FsConfig for a share served on socket_path."""
    return {
        "tag": share.tag,
        "socket": str(socket_path),
        "num_queues": 1,
        "queue_size": QUEUE_SIZE,
        "id": f"fs-{share.tag}",
    }

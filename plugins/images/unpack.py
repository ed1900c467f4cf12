"""Unpack one layer into its directory in the store: verified, all or nothing.

The layer goes to a private temporary directory which is renamed into place
only once every entry is written and the uncompressed digest (the diff id)
has been checked, so a half-unpacked layer is never visible. The blob may be a
stored file or a download still arriving: `before_publish` then verifies and
stores the blob itself, in the same pass, before the layer appears.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import zstandard
from hypercontainer.errors import UserError

from .decompress import Readable, TarStream
from .extract import describe_error, extract
from .fsutil import remove_tree


@dataclass
class LayerResult:
    diff_id: str
    size: int  # bytes of file content, the layer's share of VIRTUAL SIZE
    opaque: list[str]  # directories (relative) that hide what lower layers hold


def opaque_list_path(layer: Path) -> Path:
    """Beside the layer: overlayfs in the guest must learn its opaque directories from
    somewhere else than the trusted.* xattr, which 9p does not carry."""
    return layer.with_name(layer.name + ".opaque.json")


def read_opaque_list(layer: Path) -> list[str]:
    try:
        return json.loads(opaque_list_path(layer).read_text())
    except FileNotFoundError:
        return []


def unpack(
    blob: Path | Readable,
    dest: Path,
    tmp: Path,
    limit: int,
    what: str,
    expected_diff_id: str | None = None,
    privileged: bool | None = None,
    before_publish: Callable[[], None] | None = None,
) -> LayerResult:
    """Unpack `blob` (a file, or a stream of its bytes) to `dest` (which must not exist
    yet); all or nothing. `before_publish()` runs once the diff id is verified; if it
    raises, nothing is published."""
    privileged = os.geteuid() == 0 if privileged is None else privileged
    tmp.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=tmp, prefix="layer-"))
    try:
        with contextlib.ExitStack() as opened:
            source = opened.enter_context(blob.open("rb")) if isinstance(blob, Path) else blob
            stream = TarStream(source, limit, what)
            size, opaque = extract(stream, work, privileged, what)
            stream.drain()
        if expected_diff_id and stream.diff_id != expected_diff_id:
            raise UserError(
                f"{what}: uncompressed digest {stream.diff_id} does not match "
                f"the image config's {expected_diff_id}"
            )
        if before_publish:
            before_publish()
        if opaque:  # written first: a published layer always has its list
            dest.parent.mkdir(parents=True, exist_ok=True)
            opaque_list_path(dest).write_text(json.dumps(opaque))
        _publish(work, dest)
        return LayerResult(stream.diff_id, size, opaque)
    except BaseException as e:
        if not dest.is_dir():  # not published: its list must not stay either
            opaque_list_path(dest).unlink(missing_ok=True)
        if isinstance(e, (OSError, EOFError, zlib.error, zstandard.ZstdError, tarfile.TarError)):
            raise UserError(f"{what}: {describe_error(e)}") from None
        raise
    finally:
        remove_tree(work)


def _publish(work: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(work, dest)
    except OSError as e:
        # Another process unpacked the same layer first: same content, keep theirs.
        if e.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not dest.is_dir():
            raise

"""Write the entries of a layer's tar stream below a root, safely, in overlayfs format.

Every path goes through `saferoot.Root`, so nothing lands outside the root.
Whiteouts are stored the way overlayfs (mounted in the guest) reads them: a
`.wh.name` entry becomes a character device 0:0 called `name`, and an opaque
directory marker `.wh..wh..opq` becomes the xattr `<ns>.overlay.opaque=y` on
its directory, `trusted` when root and `user` otherwise (an unprivileged
process cannot set trusted xattrs; the guest then mounts with `userxattr`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from hypercontainer.errors import UserError

from .decompress import TarStream, TooLarge
from .saferoot import Parts, Root, clean, show

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
COPY_CHUNK = 1 << 20
MAX_ID = 2**32 - 2  # uid/gid beyond this are not real ids (-1 means "unchanged")
# Xattrs a layer may carry onto the host: file capabilities (root only) and
# user.* (but never user.overlay.*, which would steer the guest's overlayfs).
KEPT_XATTRS = ("security.capability", "user.")
MAX_HEADER_EXTENSION = 1 << 20  # a PAX record set or GNU long name; real ones are tiny
FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _umask() -> int:
    """The process's umask, read without changing it (os.umask would, for every thread)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o777  # unknown: every file then gets its mode set explicitly


UMASK = _umask()
# Who a file belongs to as created: a root unpacker makes files root's (the
# directories being written carry no set-gid bit yet: their modes come last).
CREATED_AS = (os.geteuid(), os.getegid())


class _BoundedTarInfo(tarfile.TarInfo):
    """tarfile reads a header extension into memory whole: refuse absurd ones first."""

    def _proc_pax(self, archive):
        self._check_extension()
        return super()._proc_pax(archive)

    def _proc_gnulong(self, archive):
        self._check_extension()
        return super()._proc_gnulong(archive)

    def _check_extension(self) -> None:
        if self.size > MAX_HEADER_EXTENSION:
            raise tarfile.HeaderError(f"tar header extension of {self.size} bytes is too large")


def overlay_xattr_namespace(privileged: bool) -> str:
    return "trusted" if privileged else "user"


def describe_error(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    if isinstance(error, EOFError):
        return "truncated data"
    return f"corrupt layer ({error})"


def extract(stream: TarStream, work: Path, privileged: bool, what: str) -> tuple[int, list[str]]:
    """Write every entry of `stream` below `work`.

    Returns the bytes of file content and the layer's opaque directories.
    """
    root = Root(work)
    try:
        extractor = _Extractor(root, privileged, stream)
        # "r:" and not "r|": TarStream seeks forward, and tarfile then slices headers out
        # of its buffer instead of copying the buffer for each one.
        with tarfile.open(
            fileobj=cast(IO[bytes], stream), mode="r:", tarinfo=_BoundedTarInfo
        ) as archive:
            while (member := archive.next()) is not None:
                # tarfile keeps every member it read; a layer's thousands of them only
                # make the garbage collector's passes longer.
                cast(Any, archive).members.clear()  # its list of members: not in typeshed
                root.trim()
                try:
                    extractor.add(member, archive)
                except TooLarge:
                    raise
                except UserError as e:
                    raise UserError(f"{what}: {e}") from None
                except OSError as e:
                    raise UserError(
                        f"{what}: entry {member.name[:200]!r}: {describe_error(e)}"
                    ) from None
        extractor.finish()
        return extractor.size, sorted(set(extractor.opaque))
    finally:
        root.close()


@dataclass
class _Extractor:
    root: Root
    privileged: bool
    stream: TarStream
    size: int = 0
    dirs: list[tuple[Parts, tarfile.TarInfo]] = field(default_factory=list)
    # Opaque directories, also listed apart: the guest cannot read the xattr over 9p.
    opaque: list[str] = field(default_factory=list)

    def add(self, member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        parts = clean(member.name)
        if not parts:
            if not member.isdir():
                raise UserError(f"entry {member.name!r} would replace the root directory")
            self.dirs.append((parts, member))
            return
        if parts[-1].startswith(WHITEOUT):
            self._whiteout(parts)
            return
        parent = self.root.dir(parts[:-1])
        name = parts[-1]
        if member.isdir():
            self._make_dir(parent, parts)
            self.dirs.append((parts, member))
            return
        if member.isreg():
            self._write_file(parent, parts, member, archive)
        elif member.issym():
            self._create(parent, parts, lambda: os.symlink(member.linkname, name, dir_fd=parent))
            self._own(parent, name, member)
            self._times(parent, name, member)
        elif member.islnk():
            self._hard_link(parent, parts, member)
        elif member.ischr() or member.isblk():
            self._device(parent, parts, member)
        elif member.isfifo():
            self._create(parent, parts, lambda: os.mkfifo(name, 0o600, dir_fd=parent))
            self._own(parent, name, member)
            os.chmod(name, member.mode & 0o7777, dir_fd=parent)
            self._times(parent, name, member)
        else:
            raise UserError(f"entry {show(parts)!r} has unsupported type {member.type!r}")

    def finish(self) -> None:
        """Directory modes and times last: writing children would change them."""
        if not any(not parts for parts, _ in self.dirs):
            os.fchmod(self.root.fd, 0o755)
        for parts, member in reversed(self.dirs):
            try:
                fd = self.root.dir(parts, create=False)
            except UserError:
                continue  # replaced by a later entry
            if self.privileged:
                os.fchown(fd, _id(member.uid), _id(member.gid))
            os.fchmod(fd, member.mode & 0o7777)
            self._xattrs(fd, member)
            _set_times(fd, member)

    # -- entry kinds ----------------------------------------------------------

    def _make_dir(self, parent: int, parts: Parts) -> None:
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISDIR(os.lstat(parts[-1], dir_fd=parent).st_mode):
                self._remove(parent, parts)
        self.root.dir(parts)

    def _write_file(
        self, parent: int, parts: Parts, member: tarfile.TarInfo, archive: tarfile.TarFile
    ) -> None:
        name, mode = parts[-1], member.mode & 0o7777
        fd = self._create(
            parent, parts, lambda: os.open(name, FILE_FLAGS, mode & 0o777, dir_fd=parent)
        )
        try:
            if member.issparse():
                source = archive.extractfile(member)
                assert source is not None  # a regular file has a content
                while chunk := source.read(COPY_CHUNK):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
            else:  # straight from the stream's buffer to the file
                self.stream.seek(member.offset_data)
                if self.stream.copy_to(fd, member.size) != member.size:
                    raise EOFError("the layer ends inside a file")
            self.size += member.size
            owner = (_id(member.uid), _id(member.gid))
            if self.privileged and owner != CREATED_AS:
                os.fchown(fd, *owner)  # (clears set-uid bits: the mode comes after)
                os.fchmod(fd, mode)
            elif mode != mode & 0o777 & ~UMASK:  # open() gave it less than the layer says
                os.fchmod(fd, mode)
            self._xattrs(fd, member)
            _set_times(fd, member)
        finally:
            os.close(fd)

    def _create(self, parent: int, parts: Parts, make):
        """`make()` the entry; if the name is taken (by an earlier entry of this layer:
        the directory started empty), remove that and make it again, as tar does."""
        try:
            return make()
        except FileExistsError:
            self._remove(parent, parts)
            return make()

    def _hard_link(self, parent: int, parts: Parts, member: tarfile.TarInfo) -> None:
        target = clean(member.linkname, f"hard link {member.name[:100]!r} to")
        if not target:
            raise UserError(f"hard link {member.name[:200]!r} points at a directory")
        target_parent = self.root.dir(target[:-1], create=False)
        if stat.S_ISDIR(_lstat_mode(target[-1], target_parent)):
            raise UserError(f"hard link {member.name[:200]!r} points at a directory")
        try:
            # follow_symlinks=False: link the entry itself, never what a symlink names.
            self._create(
                parent,
                parts,
                lambda: os.link(
                    target[-1],
                    parts[-1],
                    src_dir_fd=target_parent,
                    dst_dir_fd=parent,
                    follow_symlinks=False,
                ),
            )
        except FileNotFoundError:
            raise UserError(
                f"hard link {member.name[:200]!r} to missing {show(target)!r}"
            ) from None

    def _device(self, parent: int, parts: Parts, member: tarfile.TarInfo) -> None:
        if not self.privileged:
            raise UserError(f"device node {member.name[:200]!r} needs root to unpack")
        name = parts[-1]
        kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
        device = os.makedev(member.devmajor, member.devminor)
        self._create(parent, parts, lambda: os.mknod(name, kind | 0o600, device, dir_fd=parent))
        self._own(parent, name, member)
        os.chmod(name, member.mode & 0o7777, dir_fd=parent)
        self._times(parent, name, member)

    def _whiteout(self, parts: Parts) -> None:
        parent = self.root.dir(parts[:-1])
        marker = parts[-1]
        if marker == OPAQUE:
            name = f"{overlay_xattr_namespace(self.privileged)}.overlay.opaque"
            os.setxattr(parent, name, b"y")
            self.opaque.append("/".join(parts[:-1]))
            return
        if marker.startswith(WHITEOUT + WHITEOUT):
            return  # other AUFS bookkeeping (.wh..wh.plnk ...): meaningless here
        hidden = marker[len(WHITEOUT) :]
        if hidden in ("", ".", ".."):
            raise UserError(f"whiteout {show(parts)!r} names no valid entry")
        try:
            os.lstat(hidden, dir_fd=parent)
            return  # the same layer also adds the entry: it shadows the lower one anyway
        except FileNotFoundError:
            os.mknod(hidden, stat.S_IFCHR | 0o600, os.makedev(0, 0), dir_fd=parent)

    # -- helpers --------------------------------------------------------------

    def _remove(self, parent: int, parts: Parts) -> None:
        """Make room for a new entry: a later tar entry replaces an earlier one."""
        name = parts[-1]
        try:
            mode = os.lstat(name, dir_fd=parent).st_mode
        except FileNotFoundError:
            return
        if stat.S_ISDIR(mode):
            self.root.forget(parts)
            shutil.rmtree(name, dir_fd=parent)
        else:
            os.unlink(name, dir_fd=parent)

    def _own(self, parent: int, name: str, member: tarfile.TarInfo) -> None:
        owner = (_id(member.uid), _id(member.gid))
        if self.privileged and owner != CREATED_AS:  # made as root: already root's
            os.chown(name, *owner, dir_fd=parent, follow_symlinks=False)

    def _times(self, parent: int, name: str, member: tarfile.TarInfo) -> None:
        with contextlib.suppress(OverflowError, ValueError):
            ns = int(member.mtime * 1e9)
            os.utime(name, ns=(ns, ns), dir_fd=parent, follow_symlinks=False)

    def _xattrs(self, fd: int, member: tarfile.TarInfo) -> None:
        for key, value in member.pax_headers.items():
            if not key.startswith("SCHILY.xattr."):
                continue
            name = key[len("SCHILY.xattr.") :]
            if not name.startswith(KEPT_XATTRS) or name.startswith("user.overlay."):
                continue
            if name == "security.capability" and not self.privileged:
                continue
            os.setxattr(fd, name, value.encode("utf-8", "surrogateescape"))


def _lstat_mode(name: str, dir_fd: int) -> int:
    try:
        return os.lstat(name, dir_fd=dir_fd).st_mode
    except FileNotFoundError:
        return 0


def _id(value: int) -> int:
    if not 0 <= value <= MAX_ID:
        raise UserError(f"owner id {value} out of range")
    return value


def _set_times(fd: int, member: tarfile.TarInfo) -> None:
    with contextlib.suppress(OverflowError, ValueError):
        ns = int(member.mtime * 1e9)
        os.utime(fd, ns=(ns, ns))

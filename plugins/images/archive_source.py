"""Blobs read from an archive (a tar), and what the archive says to load."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

from hypercontainer.errors import UserError

from . import digests
from .manifest import Descriptor, Manifest
from .reference import Reference

CHUNK = 1 << 20


@dataclass
class Loadable:
    body: bytes
    digest: str
    parsed: Manifest
    names: list[str] = field(default_factory=list)


@dataclass
class ArchiveSource:
    """Blobs read from the archive's members; tarfile is not thread-safe: one at a time."""

    tar: tarfile.TarFile
    members: dict[str, tarfile.TarInfo]
    paths: dict[str, str] = field(default_factory=dict)  # digest -> member, docker-archive
    workers: int = 1

    def member(self, digest: str) -> tarfile.TarInfo:
        name = self.paths.get(digest) or f"blobs/{digest.replace(':', '/', 1)}"
        try:
            return self.members[name]
        except KeyError:
            raise UserError(f"archive lacks blob {digest}") from None

    def chunks(self, descriptor: Descriptor) -> Iterator[bytes]:
        yield from read_chunks(self.file(self.member(descriptor.digest)))

    def file(self, member: tarfile.TarInfo) -> IO[bytes]:
        """The content of a regular file of the archive."""
        reader = self.tar.extractfile(member)
        if reader is None:
            raise UserError(f"archive member {member.name[:100]!r} is not a regular file")
        return reader

    def read(self, descriptor: Descriptor, limit: int, what: str) -> bytes:
        if descriptor.size > limit:
            raise UserError(f"{what} larger than {limit} bytes")
        data = self.file(self.member(descriptor.digest)).read(limit + 1)
        if len(data) != descriptor.size:
            raise UserError(f"{what}: size mismatch (expected {descriptor.size}, got {len(data)})")
        digests.verify_bytes(data, descriptor.digest, what)
        return data


def normal(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name


def member_named(source: ArchiveSource, name: object) -> tarfile.TarInfo:
    if not isinstance(name, str) or normal(name) not in source.members:
        raise UserError(f"archive lacks {str(name)[:200]!r}")
    return source.members[normal(name)]


def read_chunks(reader: IO[bytes] | None) -> Iterator[bytes]:
    if reader is None:
        return
    while chunk := reader.read(CHUNK):
        yield chunk


def tagged(ref: Reference) -> Reference:
    if ref.digest:
        raise UserError(f"archive names an image by digest ({ref}); a tag is needed")
    return ref

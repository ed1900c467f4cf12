"""The `oci` images driver: registry pulls, a local store, offline archives."""

from __future__ import annotations

import builtins
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hypercontainer.diskspace import space_on
from hypercontainer.drivers import (
    Images,
    ImageSummary,
    ProgressCallback,
    PushedImage,
    ResolvedImage,
)
from hypercontainer.errors import Conflict, NotFound, UserError
from hypercontainer.log import get_logger

from . import archive as archives
from . import digests, imageconfig, manifest
from .auth import Credentials, CredentialStore
from .extract import overlay_xattr_namespace
from .importer import Limits, Progress
from .index import ImageRecord
from .pull import pull as pull_image
from .push import Pusher, mount_sources
from .reference import Reference, familiar, parse, parse_registry
from .registry import RegistryClient
from .settings import OciSettings
from .store import Store

_ID_PREFIX = re.compile(r"(?:sha256:)?([0-9a-f]{1,64})")

log = get_logger()


class OciImages(Images):
    name = "oci"
    Settings = OciSettings
    settings: OciSettings

    def __init__(self, config) -> None:
        super().__init__(config)
        self.store = Store(Path(config.state_root) / "images")
        self.credentials = CredentialStore(self.store.root / "auth.json")
        self.platform = manifest.parse_platform(self.settings.platform)
        self.limits = Limits(self.settings.max_layer_size, self.settings.max_compression_ratio)

    def describe(self) -> dict[str, Any]:
        return super().describe() | {
            "store": str(self.store.root),
            "platform": str(self.platform),
            # overlayfs in the guest reads opaque directories from this xattr namespace
            "overlay_xattr": overlay_xattr_namespace(self.store.privileged),
        }

    def layers_root(self) -> Path:
        return self.store.layers

    # -- lookups --------------------------------------------------------------

    def resolve(self, reference: str) -> ResolvedImage:
        image_id, name = self._find(reference)
        record = self.store.image(image_id)
        self.store.check_complete(record)
        return self._resolved(record, name)

    def list(self) -> list[ImageSummary]:
        rows = []
        for record in self.store.index.images():
            refs = self.store.index.refs(record.id)
            tags = [parse(r) for r, _, kind in refs if kind == "tag"]
            if not tags:  # pulled by digest only, or untagged: one row, tag <none>
                names = [parse(r) for r, _, _ in refs]
                tags = [Reference(names[0].registry, names[0].repository)] if names else []
            shown: builtins.list[Reference | None] = [*tags] or [None]
            for ref in shown:
                repository, tag = familiar(ref) if ref else ("<none>", "<none>")
                rows.append(ImageSummary(repository, tag, record.id, record.created, record.size))
        return sorted(rows, key=lambda r: (r.repository, r.tag, r.id))

    # -- content in -----------------------------------------------------------

    def pull(self, reference: str, progress: ProgressCallback | None = None) -> ResolvedImage:
        ref = parse(reference.strip(), self.settings.default_registry)
        client = RegistryClient(ref.registry, self.credentials, self.settings.insecure_registries)
        # A full disk is said once what the pull wrote has gone again (Store.writing).
        with space_on("the image store", self.store.root):
            record = pull_image(
                self.store,
                client,
                ref,
                self.platform,
                self.limits,
                self.settings.concurrent_downloads,
                Progress(progress),
            )
        log.info("image pulled", reference=str(ref), id=record.id, layers=len(record.layers))
        return self._resolved(record, str(ref))

    def load(self, archive: Path) -> builtins.list[str]:
        with space_on("the image store", self.store.root):
            loaded = archives.load(
                self.store,
                Path(archive),
                self.settings.default_registry,
                self.platform,
                self.limits,
            )
        log.info("images loaded", archive=str(archive), images=loaded)
        return loaded

    def login(self, registry: str, username: str, password: str) -> None:
        name = parse_registry(registry or self.settings.default_registry)
        if not username:
            raise UserError("login needs a username")
        credentials = Credentials(username, password)
        RegistryClient(name, self.credentials, self.settings.insecure_registries).login(credentials)
        with space_on("the image store", self.store.root):  # where auth.json is
            self.credentials.save(name, credentials)
        log.info("logged in", registry=name, username=username)

    def logout(self, registry: str) -> str:
        name = parse_registry(registry or self.settings.default_registry)
        with space_on("the image store", self.store.root):
            removed = self.credentials.remove(name)
        if removed:
            log.info("logged out", registry=name)
        message = (
            f"Removing login credentials for {name}" if removed else (f"Not logged in to {name}")
        )
        if self.credentials.in_docker_config(name):
            message += (
                f"; {self.credentials.docker_config} still holds credentials for it, "
                f"used until `docker logout {name}`"
            )
        return message

    def tag(self, source: str, target: str) -> str:
        image_id, _ = self._find(source)
        ref = parse(target.strip(), self.settings.default_registry)
        if ref.digest:
            raise UserError(f"cannot tag {target!r}: a tag names an image, a digest is fixed")
        self.store.index.name(str(ref), image_id)
        log.info("image tagged", id=image_id, reference=str(ref))
        return str(ref)

    def push(
        self,
        reference: str,
        destination: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> PushedImage:
        image_id, name = self._find(reference)
        if not (destination or name):
            raise UserError(
                f"{reference!r} is an image id: name where to push it "
                "(hyperctl push ID REGISTRY/REPOSITORY:TAG)"
            )
        dest = parse((destination or name or "").strip(), self.settings.default_registry)
        if dest.digest:
            raise UserError(
                f"cannot push to {dest}: a push names a tag, the registry computes the digest"
            )
        client = RegistryClient(dest.registry, self.credentials, self.settings.insecure_registries)
        refs = [r for r, _, _ in self.store.index.refs(image_id)]
        with self.store.reading():
            record = self.store.image(image_id)
            digest = Pusher(
                self.store,
                client,
                dest,
                mount_sources(refs, dest, parse),
                self.settings.push_chunk_size,
                self.settings.concurrent_uploads,
                Progress(progress),
            ).run(record)
        # Remembered as where the image is: a later push to this registry mounts from it.
        self.store.index.name(f"{dest.name}@{digest}", image_id, kind="digest")
        log.info("image pushed", reference=str(dest), digest=digest)
        return PushedImage(str(dest), digest)

    def recover(self) -> None:
        # A killed pull or load leaves work in tmp/ and blobs no image names yet.
        gone = self.store.collect()
        if gone:
            log.info("unused layers removed", count=len(gone))

    # -- content out ----------------------------------------------------------

    def save(self, references: builtins.list[str], archive: Path) -> None:
        if not references:
            raise UserError("save needs at least one image")
        chosen: dict[str, builtins.list[str]] = {}
        for text in references:
            image_id, name = self._find(text)
            names = chosen.setdefault(image_id, [])
            if name and name not in names:
                names.append(name)
        with self.store.reading():
            images = [(self.store.image(i), names) for i, names in chosen.items()]
            try:
                archives.save(self.store, images, Path(archive))
            except OSError as e:
                raise UserError(f"{archive}: {e.strerror}") from None

    def remove(
        self, reference: str, in_use: Iterable[str] = (), force: bool = False
    ) -> builtins.list[str]:
        image_id, name = self._find(reference)
        index = self.store.index
        refs = index.refs(image_id)
        tags = [r for r, _, kind in refs if kind == "tag"]
        if name and [t for t in tags if t != name]:
            index.untag(name)  # the image keeps its other names
            return [f"Untagged: {_familiar(name)}"]
        if image_id in {i if i.startswith("sha256:") else f"sha256:{i}" for i in in_use}:
            if not force:
                raise Conflict(
                    f"image {reference} ({digests.short(image_id)}) is used by a "
                    "container; stop and remove it first or use -f"
                )
            for r, _, _ in refs:  # as Docker: untag, keep the content for the container
                index.untag(r)
            return [f"Untagged: {_familiar(r)}" for r, _, _ in refs]
        repositories = {parse(t).name for t in tags}
        if name is None and len(repositories) > 1 and not force:
            raise Conflict(
                f"image {digests.short(image_id)} is referenced in several repositories; "
                "remove it by name or use -f"
            )
        index.delete_image(image_id)
        gone = self.store.collect()
        return (
            [f"Untagged: {_familiar(r)}" for r, _, _ in refs]
            + [f"Deleted: {image_id}"]
            + [f"Deleted: {layer}" for layer in gone]
        )

    # -- helpers --------------------------------------------------------------

    def _find(self, text: str) -> tuple[str, str | None]:
        """(image id, the reference it was found by, or None for an id)."""
        text = text.strip()
        index = self.store.index
        match = _ID_PREFIX.fullmatch(text)
        if match and len(match.group(1)) == 64 and index.image(f"sha256:{match.group(1)}"):
            return f"sha256:{match.group(1)}", None
        parse_error: UserError | None = None
        try:
            ref = parse(text, self.settings.default_registry)
            found = index.lookup(str(ref))
            if found:
                return found, str(ref)
        except UserError as e:
            parse_error = e
        if match:
            candidates = index.image_ids_with_prefix(f"sha256:{match.group(1)}")
            if len(candidates) == 1:
                return candidates[0], None
            if len(candidates) > 1:
                raise UserError(f"image id prefix {text!r} is ambiguous")
        if parse_error and not match:
            raise parse_error
        raise NotFound(f"image {text!r} not found locally")

    def _resolved(self, record: ImageRecord, name: str | None) -> ResolvedImage:
        config = imageconfig.parse(self.store.blobs.read(record.id)).container
        if name is None:
            tags = [r for r, _, kind in self.store.index.refs(record.id) if kind == "tag"]
            name = tags[0] if tags else record.id
        opaque = {
            self.store.layer_relpath(d): self.store.layer_opaque_dirs(d) for d in record.diff_ids()
        }
        return ResolvedImage(
            id=record.id,
            reference=name,
            layers=self._stack(record),
            config=config,
            opaque_dirs={layer: dirs for layer, dirs in opaque.items() if dirs},
        )

    def _stack(self, record: ImageRecord) -> builtins.list[str]:
        """Layer directories bottom first; a layer repeated counts once, at its topmost place."""
        seen: set[str] = set()
        top_first = []
        for diff_id in reversed(record.diff_ids()):
            if diff_id not in seen:
                seen.add(diff_id)
                top_first.append(self.store.layer_relpath(diff_id))
        return top_first[::-1]


def _familiar(text: str) -> str:
    ref = parse(text)
    repository, tag = familiar(ref)
    return f"{repository}@{ref.digest}" if ref.digest else f"{repository}:{tag}"

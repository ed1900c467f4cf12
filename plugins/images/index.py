"""Which images the store holds and by which names: SQLite in WAL mode.

Tables: `images` (one JSON record per image id), `refs` (tag and digest
references -> image id) and `layers` (unpacked layers and their sizes). Each
change is one transaction, so concurrent processes see all of it or none.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hypercontainer.diskspace import space_on
from hypercontainer.sqlitedb import Connections, use_wal, write_transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (id TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS refs (
    reference TEXT PRIMARY KEY,
    image_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('tag', 'digest'))
);
CREATE INDEX IF NOT EXISTS refs_by_image ON refs (image_id);
CREATE TABLE IF NOT EXISTS layers (diff_id TEXT PRIMARY KEY, size INTEGER NOT NULL);
"""


@dataclass
class LayerRecord:
    digest: str  # the (usually compressed) blob as the manifest names it
    media_type: str
    size: int  # blob size
    diff_id: str  # digest of the uncompressed tar: names the unpacked directory


@dataclass
class ImageRecord:
    id: str  # config digest
    manifest_digest: str
    manifest_media_type: str
    manifest_size: int
    config_media_type: str
    config_size: int
    layers: list[LayerRecord]
    created: str = ""
    size: int = 0  # unpacked bytes of all layers
    platform: str = ""
    added: str = field(default="")

    def blobs(self) -> set[str]:
        return {self.manifest_digest, self.id} | {layer.digest for layer in self.layers}

    def diff_ids(self) -> list[str]:
        return [layer.diff_id for layer in self.layers]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ImageRecord:
        data = json.loads(text)
        data["layers"] = [LayerRecord(**layer) for layer in data["layers"]]
        return cls(**data)


class Index:
    def __init__(self, path: Path) -> None:
        self.path = path
        # Kept open between operations: when its last connection closes, SQLite removes
        # the database's WAL and shared-memory files, and on a full disk the next
        # connection could not make them again: no image could even be listed.
        self._connections = Connections(str(path), use_wal)
        with space_on("the image store", path.parent), self._connect() as db:
            db.executescript(SCHEMA)

    def _connect(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return self._connections.use()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        # A full disk rolls the change back; said as the store's, as its files' would be.
        with (
            space_on("the image store", self.path.parent),
            self._connect() as db,
            write_transaction(db),
        ):
            yield db

    # -- reads ----------------------------------------------------------------

    def image(self, image_id: str) -> ImageRecord | None:
        with self._connect() as db:
            row = db.execute("SELECT record FROM images WHERE id = ?", (image_id,)).fetchone()
        return ImageRecord.from_json(row[0]) if row else None

    def images(self) -> list[ImageRecord]:
        with self._connect() as db:
            rows = db.execute("SELECT record FROM images ORDER BY id").fetchall()
        return [ImageRecord.from_json(r[0]) for r in rows]

    def image_ids_with_prefix(self, prefix: str) -> list[str]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT id FROM images WHERE substr(id, 1, ?) = ?", (len(prefix), prefix)
            ).fetchall()
        return [r[0] for r in rows]

    def lookup(self, reference: str) -> str | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT image_id FROM refs WHERE reference = ?", (reference,)
            ).fetchone()
        return row[0] if row else None

    def refs(self, image_id: str | None = None) -> list[tuple[str, str, str]]:
        """(reference, image id, kind) rows, of one image or all."""
        query, args = "SELECT reference, image_id, kind FROM refs", tuple[str, ...]()
        if image_id:
            query, args = query + " WHERE image_id = ?", (image_id,)
        with self._connect() as db:
            return db.execute(query + " ORDER BY reference", args).fetchall()

    def layer_size(self, diff_id: str) -> int | None:
        with self._connect() as db:
            row = db.execute("SELECT size FROM layers WHERE diff_id = ?", (diff_id,)).fetchone()
        return row[0] if row else None

    def layer_ids(self) -> set[str]:
        with self._connect() as db:
            return {r[0] for r in db.execute("SELECT diff_id FROM layers")}

    # -- writes ---------------------------------------------------------------

    def record_layer(self, diff_id: str, size: int) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO layers VALUES (?, ?)", (diff_id, size))

    def add(self, record: ImageRecord, tags: list[str], digest_refs: list[str]) -> None:
        """Store an image and point `tags` (moved from any other image) at it."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO images VALUES (?, ?)", (record.id, record.to_json()))
            rows = [(t, record.id, "tag") for t in tags]
            rows += [(d, record.id, "digest") for d in digest_refs]
            db.executemany("INSERT OR REPLACE INTO refs VALUES (?, ?, ?)", rows)

    def name(self, reference: str, image_id: str, kind: str = "tag") -> None:
        """Point `reference` (a tag or a `name@digest`) at `image_id`, moving it from any
        other image."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO refs VALUES (?, ?, ?)", (reference, image_id, kind))

    def untag(self, reference: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM refs WHERE reference = ?", (reference,))

    def delete_image(self, image_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM refs WHERE image_id = ?", (image_id,))
            db.execute("DELETE FROM images WHERE id = ?", (image_id,))

    def delete_layers(self, diff_ids: set[str]) -> None:
        with self.transaction() as db:
            db.executemany("DELETE FROM layers WHERE diff_id = ?", [(d,) for d in diff_ids])

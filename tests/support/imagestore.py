"""What an image store holds on disk, to show an operation left no trace; what progress said."""

from __future__ import annotations

EMPTY = {"blobs": [], "layers": [], "opaque_lists": [], "tmp": [], "images": [], "refs": []}


def store_state(images) -> dict:
    """Blobs, layer directories, opaque lists, temporaries, images and references."""
    root = images.store.root
    return {
        "blobs": sorted(images.store.blobs.all()),
        "layers": sorted(p.name for p in (root / "layers").glob("*/*") if p.is_dir()),
        "opaque_lists": sorted(p.name for p in (root / "layers").glob("*/*.opaque.json")),
        "tmp": sorted(p.name for p in (root / "tmp").glob("*")),
        "images": [r.id for r in images.store.index.images()],
        "refs": [r for r, _, _ in images.store.index.refs()],
    }


def statuses(events: list[dict]) -> dict[str, list[str]]:
    """Per layer id, the progress statuses in the order they came, repeats collapsed."""
    seen: dict[str, list[str]] = {}
    for event in events:
        history = seen.setdefault(event["id"], [])
        if not history or history[-1] != event["status"]:
            history.append(event["status"])
    return seen

"""Content digests: `sha256:<hex>` (and sha512), validated before any use.

A digest becomes a file name in the store, so nothing but the exact form
`algorithm:lowercase-hex` of the right length is ever accepted.
"""

from __future__ import annotations

import hashlib
import re

from hypercontainer.errors import UserError

_HEX_LENGTH = {"sha256": 64, "sha512": 128}
_FORM = re.compile(r"(sha256|sha512):([0-9a-f]+)")


def parse(text: str) -> str:
    """`text` if it is a supported, well-formed digest; a UserError otherwise."""
    match = _FORM.fullmatch(text) if isinstance(text, str) else None
    if not match or len(match.group(2)) != _HEX_LENGTH[match.group(1)]:
        raise UserError(f"invalid digest {str(text)[:80]!r}")
    return text


def is_valid(text: str) -> bool:
    try:
        parse(text)
    except UserError:
        return False
    return True


def algorithm(digest: str) -> str:
    return digest.split(":", 1)[0]


def hex_of(digest: str) -> str:
    return digest.split(":", 1)[1]


def short(digest: str) -> str:
    """The 12-character id Docker shows for a layer or an image."""
    return hex_of(digest)[:12]


def hasher(digest: str):
    """A fresh hash object of the algorithm `digest` uses."""
    return hashlib.new(algorithm(digest))


def of_bytes(data: bytes, algo: str = "sha256") -> str:
    return f"{algo}:{hashlib.new(algo, data).hexdigest()}"


def verify_bytes(data: bytes, digest: str, what: str) -> None:
    """Refuse `data` unless it hashes to `digest`."""
    actual = of_bytes(data, algorithm(digest))
    if actual != digest:
        raise UserError(f"{what}: digest mismatch (expected {digest}, got {actual})")

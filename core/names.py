"""Ids and names in the original's style.

Pods and containers are named `<image base name>-<10 digits>` (e.g.
`nginx-8530075287`), VMs `vm-<10 letters>`, containers have a 64-hex id.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string

_NAME_CHARS = re.compile(r"[^a-z0-9_.-]+")


def image_base(image: str) -> str:
    """`registry:5000/team/nginx:1.2@sha256:...` -> `nginx`."""
    name = image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]
    return _NAME_CHARS.sub("-", name.lower()).strip("-.") or "pod"


def numbered(base: str) -> str:
    return f"{base}-{secrets.randbelow(10**10):010d}"


def vm_name() -> str:
    return "vm-" + "".join(secrets.choice(string.ascii_letters) for _ in range(10))


def container_id() -> str:
    return secrets.token_hex(32)


def tap_name(pod_id: str) -> str:
    """A short, stable tap device name per pod: 'hc' and 12 hex digits (the limit is 15)."""
    return "hc" + hashlib.sha256(pod_id.encode()).hexdigest()[:12]

"""A stable MAC address per pod, so the guest sees the same NIC after a restart."""

from __future__ import annotations

import hashlib


def mac_for(pod_id: str) -> str:
    """A locally administered, unicast MAC derived from the pod id."""
    digest = hashlib.sha256(b"hypercontainer-mac\0" + pod_id.encode()).digest()
    # Bit 1 of the first octet marks it locally administered, bit 0 clear keeps it unicast.
    first = (digest[0] & 0b1111_1100) | 0b0000_0010
    return ":".join(f"{b:02x}" for b in (first, *digest[1:6]))

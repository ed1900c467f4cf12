"""What a hyperd on the cni network holds, read from outside: its host-local leases,
cached CNI results, pod namespaces and attachment records; and its [cni] table."""

from __future__ import annotations

import sqlite3
from pathlib import Path

# Pod namespaces of other hyperds on this machine: not this test's to count.
OTHERS = {p.name for p in Path("/run/netns").glob("hc-????????????")}
NOTHING = {"leases": [], "cached": [], "namespaces": [], "records": 0}


def cni_section(tmp_path: Path, network: str = "hypercontainer") -> str:
    return (
        f'[cni]\nconf_dir = "{tmp_path / "net.d"}"\ncache_dir = "{tmp_path / "cnicache"}"\n'
        f'network = "{network}"\n'
    )


def held(tmp_path: Path) -> dict:
    """What CNI holds for this hyperd: leases, cached results, pod namespaces, records."""
    data = tmp_path / "state" / "cni" / "networks"
    try:
        with sqlite3.connect(f"file:{tmp_path / 'state' / 'state.db'}?mode=ro", uri=True) as db:
            records = db.execute("SELECT count(*) FROM cni_attachments").fetchone()[0]
    except sqlite3.OperationalError:  # no table yet
        records = 0
    return {
        "leases": sorted(p.name for p in data.glob("*/*") if p.name[0].isdigit()),
        "cached": sorted(p.name for p in (tmp_path / "cnicache" / "results").glob("*")),
        "namespaces": sorted(
            p.name for p in Path("/run/netns").glob("hc-????????????") if p.name not in OTHERS
        ),
        "records": records,
    }

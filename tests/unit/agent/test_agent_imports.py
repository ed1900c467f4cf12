"""The guest image holds only what agent/imports.py pulls in: the agent must need no more."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

AGENT = Path(__file__).resolve().parents[3] / "core" / "guest" / "agent"

# Loads the agent as the guest does (top-level package `agent`, no site) and
# lists the standard-library modules loaded.
PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
before = set(sys.modules)
for name in sys.argv[2:]:
    __import__(name)
print(json.dumps(sorted(n for n in set(sys.modules) - before if not n.startswith("agent"))))
"""


def loaded(*modules: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-S", "-c", PROBE, str(AGENT.parent), *modules],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(json.loads(out))


def test_agent_modules_import_nothing_beyond_imports_py(tmp_path):
    agent_modules = [
        f"agent.{p.stem}"
        for p in sorted(AGENT.glob("*.py"))
        if p.stem not in ("__init__", "imports")
    ]
    # The directory is named "agent" in the guest; here it is core/guest/agent.
    assert AGENT.name == "agent"
    needed = loaded(*agent_modules)
    listed = loaded("agent.imports")
    assert needed - listed == set()
    assert {"subprocess", "ipaddress", "termios"} <= listed

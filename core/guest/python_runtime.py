"""The guest's Python: Debian's interpreter with only the stdlib the agent loads.

The unpacked interpreter is run on the host, as the guest starts the agent
(`-S`: no site, which costs 0.2-0.5 s under TCG and is of no use to the agent),
imports what the agent imports and reports every module file it loaded; only
those files (and the shared libraries of the extension modules among them) go
into the image. What the agent imports is read from its sources (every import
statement, lazy ones included) and from `agent/imports.py`, where the agent
lists what stdlib functions import behind its back. The kept sources are
compiled to .pyc by the same interpreter (unchecked-hash: valid whatever the
file times), which makes the agent start 0.7 s sooner under TCG.
"""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path

from ..errors import DriverError

VERSION = "3.11"
PACKAGES = [f"python{VERSION}-minimal", f"libpython{VERSION}-minimal", f"libpython{VERSION}-stdlib"]
INTERPRETER = Path(f"usr/bin/python{VERSION}")
STDLIB = Path(f"usr/lib/python{VERSION}")

# Used until the agent has an imports.py: what a stdlib-only agent plausibly needs.
FALLBACK_IMPORTS = (
    "json socket selectors subprocess os struct threading base64 signal errno select fcntl pty "
    "termios tty shutil tempfile ctypes"
).split()

# Run by the unpacked interpreter: the files of every module loaded, stdlib or not.
# A name the guest's stdlib lacks is skipped: the agent must cope without it anyway.
_LIST_LOADED = """
import json, runpy, sys
sys.path.insert(0, sys.argv[1])
for name in sys.argv[2:]:
    try:
        __import__(name)
    except ImportError:
        pass
print(json.dumps(sorted({
    m.__file__ for m in list(sys.modules.values()) if getattr(m, "__file__", None)
})))
"""

_COMPILE = """
import py_compile, sys
for source, shown in zip(sys.argv[1::2], sys.argv[2::2]):
    py_compile.compile(source, dfile=shown, doraise=True,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
"""


def _python(root: Path, *args: str) -> str:
    # The guest's environment: no PYTHON* variables, no locale, no site.
    done = subprocess.run(
        [str(root / INTERPRETER), "-S", *args],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no error output"])[-1]
        raise DriverError(f"guest python failed: {last}")
    return done.stdout


def imported_by(package: Path) -> set[str]:
    """Absolute module names the package's sources import, anywhere in the code."""
    names: set[str] = set()
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
    return {name for name in names if name.split(".")[0] != package.name}


def imports_to_keep(agent_dir: Path) -> list[str]:
    """Module names whose import pulls in everything the agent needs."""
    found = sorted(imported_by(agent_dir))
    if (agent_dir / "imports.py").is_file():
        return [f"{agent_dir.name}.imports", *found]
    return [*FALLBACK_IMPORTS, *found]


def stdlib_files(root: Path, agent_dir: Path) -> list[Path]:
    """Stdlib files (relative to `root`) the agent loads, run from the unpacked tree."""
    loaded = json.loads(
        _python(root, "-c", _LIST_LOADED, str(agent_dir.parent), *imports_to_keep(agent_dir))
    )
    stdlib = (root / STDLIB).resolve()
    kept = []
    for name in loaded:
        path = Path(name).resolve()
        if path.is_relative_to(stdlib):
            kept.append(path.relative_to(root.resolve()))
    if not any(p.name == "os.py" for p in kept):
        raise DriverError("guest python ran from the host's stdlib, not the unpacked one")
    return kept


def compile_sources(root: Path, pairs: list[tuple[Path, str]]) -> None:
    """Write __pycache__/*.pyc next to each source; `shown` is its path in the guest."""
    args: list[str] = []
    for source, shown in pairs:
        args += [str(source), shown]
    if args:
        _python(root, "-c", _COMPILE, *args)

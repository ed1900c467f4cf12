"""CNI plugins that stop at a chosen point, so that a test can kill hyperd there.

A directory put first in cni.bin_dir holds a stand-in for each wrapped plugin: it
runs the real one from /usr/lib/cni, unless its `hold` file names this plugin and
command ("DEL before portmap", "DEL after bridge"). Then, before (or once the real
plugin succeeded), it writes its pid to `reached` and waits. hyperd runs each plugin with its
own death as the plugin's signal (setpriv --pdeathsig KILL): the waiting stand-in
dies with the hyperd the test kills, as the real plugin would have at that point.
"""

from __future__ import annotations

from pathlib import Path

REAL = Path("/usr/lib/cni")
WAIT = 600  # seconds a stand-in waits at its point: far beyond any test's kill

STAND_IN = """#!/bin/sh
point="$(cat {dir}/hold 2>/dev/null)"
if [ "$point" = "$CNI_COMMAND before {name}" ]; then
    echo $$ > {dir}/reached
    exec sleep {wait}
fi
{real}
status=$?
if [ "$status" -eq 0 ] && [ "$point" = "$CNI_COMMAND after {name}" ]; then
    echo $$ > {dir}/reached
    exec sleep {wait}
fi
exit "$status"
"""


class HoldingPlugins:
    def __init__(self, directory: Path, names: tuple[str, ...] = ("bridge", "portmap")) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        for name in names:
            script = directory / name
            script.write_text(
                STAND_IN.format(dir=directory, name=name, real=REAL / name, wait=WAIT)
            )
            script.chmod(0o755)

    @property
    def bin_dir(self) -> str:
        """cni.bin_dir: the stand-ins first, the real plugins after."""
        return f"{self.dir}:{REAL}"

    def hold(self, point: str) -> None:
        """Stop at `point` ("COMMAND before|after PLUGIN") from now on."""
        (self.dir / "reached").unlink(missing_ok=True)
        (self.dir / "hold").write_text(point)

    def reached(self) -> bool:
        return self.holder() is not None

    def holder(self) -> int | None:
        """The pid of the stand-in waiting at the point (it stays the plugin's process)."""
        try:
            return int((self.dir / "reached").read_text())
        except (OSError, ValueError):  # not there yet, or being written
            return None

    def release(self) -> None:
        """Hold nowhere: every plugin runs as the real one again."""
        (self.dir / "hold").unlink(missing_ok=True)
        (self.dir / "reached").unlink(missing_ok=True)

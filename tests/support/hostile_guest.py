"""A guest image whose agent is hostile on request (tests/support/hostile_agent.py).

The project's own initrd with a second cpio archive appended: the kernel unpacks
concatenated archives in order, later files replacing earlier ones, so the second
one adds the hostile agent beside /hc/agent and an /init that starts it instead.
Nothing else of the image changes; hyperd boots it through `guest.initrd`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from hypercontainer import guest
from hypercontainer.config import Config
from hypercontainer.guest import cpio
from hypercontainer.guest.image import ensure_image

AGENT = Path(__file__).with_name("hostile_agent.py")
START_AGENT = "exec /usr/bin/python3 -S -m agent\n"
START_HOSTILE = "exec /usr/bin/python3 -S -m hostile_agent\n"


def hostile_initrd(directory: Path) -> Path:
    """Write the hostile guest's initrd into `directory`; its path."""
    image = ensure_image(Config())  # the machine's image, as every test hyperd boots
    stage = directory / "hostile-stage"
    (stage / "hc").mkdir(parents=True)
    init = (Path(guest.__file__).parent / "init").read_text()
    assert START_AGENT in init, "/init no longer starts the agent as this expects"
    (stage / "init").write_text(
        init.replace(START_AGENT, START_AGENT.replace("agent", "hostile_agent"))
    )
    (stage / "init").chmod(0o755)
    shutil.copy(AGENT, stage / "hc" / "hostile_agent.py")
    (stage / "hc").chmod(0o755)
    extra = directory / "hostile.cpio.gz"
    cpio.write(stage, extra, {})
    initrd = directory / "hostile-initrd.img"
    initrd.write_bytes(image.initrd.read_bytes() + extra.read_bytes())
    shutil.rmtree(stage)
    extra.unlink()
    return initrd

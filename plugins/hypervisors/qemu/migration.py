"""A template guest's device state saved, and restored into a clone, over QMP.

With `x-ignore-shared` the migration stream leaves out RAM on a shared file:
the template's RAM file is the RAM, and the state file holds only the devices
(a few hundred KB). Both ends run QEMU's `exec:` migration through `cat`
(QEMU 7.2 has no `file:` URI).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from hypercontainer.errors import DriverError
from qemu.qmp import QMPClient, QMPError

from . import qmp
from .cmdline import AGENT_PORT_ID

CAPABILITIES = {
    "capabilities": [
        {"capability": "x-ignore-shared", "state": True},
        {"capability": "events", "state": True},  # MIGRATION events: no polling for the end
    ]
}


async def _migrated(client: QMPClient, command: str, uri: str) -> None:
    """Run `command` (migrate or migrate-incoming) to `uri` and wait for its end."""
    await client.execute("migrate-set-capabilities", CAPABILITIES)
    with client.listener("MIGRATION") as events:
        await client.execute(command, {"uri": uri})
        while True:
            event: Any = await qmp.next_event(client, events)  # a QMP event: a mapping
            status = event["data"]["status"]
            if status == "completed":
                return
            if status in ("failed", "cancelled"):
                raise QMPError(f"{command} {status}")


def save_when_agent_waits(monitor: Path, state: Path, timeout: float) -> None:
    """Start the paused template guest; once its agent has opened its port (and so
    waits for a host, before any pod exists), pause it and write its device state."""

    async def work(client: QMPClient) -> None:
        with client.listener("VSERPORT_CHANGE") as ports:
            await client.execute("cont")
            while True:
                event: Any = await qmp.next_event(client, ports)
                data = event["data"]
                if data.get("id") == AGENT_PORT_ID and data.get("open"):
                    break
        await client.execute("stop")
        await _migrated(client, "migrate", f"exec:cat > {shlex.quote(str(state))}")

    qmp.converse(monitor, "saving the template", work, timeout)


def restore(monitor: Path, state: Path, timeout: float) -> None:
    """Load the template's device state into a clone started with `-incoming defer`,
    and run it (the template was saved paused, so its clone arrives paused)."""
    if not state.is_file():  # cat would fail, and QEMU wait for a stream for ever
        raise DriverError(f"restoring the template: {state} is missing")

    async def work(client: QMPClient) -> None:
        await _migrated(client, "migrate-incoming", f"exec:cat {shlex.quote(str(state))}")
        await client.execute("cont")

    qmp.converse(monitor, "restoring the template", work, timeout)

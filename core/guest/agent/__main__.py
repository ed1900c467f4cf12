"""The guest agent: `python3 -m agent [options]`, normally as the VM's PID 1.

Options (for running the same agent on a host, in tests):
  --unix=PATH        listen on a unix socket instead of the VM's transport
  --state=DIR        state directory (default /run/hc)
  --shares=DIR       bind-mount DIR/<tag> instead of mounting 9p share <tag>
  --crun-arg=ARG     a global crun option (repeatable)
  --no-poweroff      as PID 1, exit instead of powering off when the agent ends
"""

from __future__ import annotations

import os
import sys
import threading

from .handlers import Handlers
from .log import drain, log
from .outbox import Outbox
from .reaper import Reaper, run_as_init
from .runtime import Runtime
from .server import Server
from .settings import Settings


class Options:
    def __init__(self, argv: list[str]) -> None:
        self.unix: str | None = None
        self.poweroff = True
        self.settings = Settings()
        for arg in argv:
            name, _, value = arg.partition("=")
            if name == "--unix":
                self.unix = value
            elif name == "--state":
                self.settings.state_dir = value
            elif name == "--shares":
                self.settings.shares_dir = value
            elif name == "--crun-arg":
                self.settings.crun_args.append(value)
            elif name == "--no-poweroff":
                self.poweroff = False
            else:
                raise SystemExit(f"hc-agent: unknown option {arg}\n{__doc__}")


def serve(options: Options, exits: int | None) -> int:
    from . import transport

    outbox = Outbox()
    reaper = Reaper()
    if exits is not None:
        threading.Thread(target=reaper.run, args=(exits,), daemon=True, name="reaper").start()
    else:
        log("not PID 1: the exits of containers will not be seen")
    server = Server(Handlers(Runtime(options.settings, outbox, reaper)), outbox)
    if options.unix:
        name, connections = (
            options.unix,
            transport.listener_connections(transport.unix_listener(options.unix)),
        )
    else:
        name, connections = transport.discover()
    log("serving", transport=name)
    drain()  # before the server thread opens the port, which tells the host we wait
    threading.Thread(target=server.serve, args=(connections,), daemon=True, name="server").start()
    server.wait_finished()
    log("pod destroyed")
    return 0


def main(argv: list[str]) -> None:
    log("started")
    options = Options(argv)
    if os.getpid() == 1:
        run_as_init(lambda exits: serve(options, exits), poweroff=options.poweroff)
    else:
        sys.exit(serve(options, None))


if __name__ == "__main__":
    main(sys.argv[1:])

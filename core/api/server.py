"""hyperd: the daemon. One per host (or per user when rootless).

It owns the state store, the VMs and the agent links, and serves the API on
a unix socket (mode 0600, or 0660 for `socket_group`). Stopping hyperd
leaves every pod's VM running; the next hyperd adopts them.
"""

from __future__ import annotations

import argparse
import fcntl
import grp
import os
import signal
import sys
import threading

from .. import config as configuration
from .. import log as logging
from ..errors import HyperError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hyperd", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="configuration file (TOML)")
    parser.add_argument("--debug", action="store_true", help="debug logging, tracebacks")
    return parser.parse_args(argv)


def single_instance(config: configuration.Config):
    """Hold a lock for the daemon's lifetime: two daemons on one state would fight."""
    config.run_root.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = open(config.run_root / "hyperd.lock", "w")  # noqa: SIM115 - held until exit
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise HyperError(f"another hyperd is running for {config.run_root}") from None
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


def serve(config: configuration.Config) -> None:
    from .. import runtime as engine
    from ..driver_settings import check_tables
    from .http import UnixHTTPServer
    from .routes import build_router

    log = logging.get_logger()
    _lock = single_instance(config)  # kept open on purpose, until hyperd exits
    check_tables(config)  # every driver's table, selected or not: a mistake shows at once
    runtime = engine.load(config)
    runtime.adopt()
    group = grp.getgrnam(config.socket_group).gr_gid if config.socket_group else None
    if group is not None:
        # Members must pass through the run root to reach the socket (and no further:
        # each pod's own directory in it stays 0700).
        os.chown(config.run_root, -1, group)
        os.chmod(config.run_root, 0o710)
    server = UnixHTTPServer(str(config.socket_path), build_router(runtime), group)

    def stop(signum, frame) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("hyperd listening", socket=str(config.socket_path), pid=os.getpid())
    try:
        server.serve_forever()
    finally:
        runtime.shutdown()
        server.server_close()
        config.socket_path.unlink(missing_ok=True)
        log.info("hyperd stopped; pods keep running")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = configuration.load(args.config)
        logging.configure("debug" if args.debug else config.log_level)
        serve(config)
    except HyperError as e:
        if args.debug:
            raise
        print(f"hyperd: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""hyperctl: drive pods and containers in their VMs, like the original's command line."""

from __future__ import annotations

import argparse
import os
import sys

from .. import paths
from .client import Client, CommandError

VERBS = (
    "run", "create", "start", "stop", "rm", "list", "exec", "logs", "attach", "kill",
    "pause", "unpause", "ports", "pull", "push", "tag", "images", "rmi", "load", "save",
    "login", "logout",
    "info", "version", "schema", "validate", "inspect", "events",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    from . import images, pods, system, views

    parser = argparse.ArgumentParser(
        prog="hyperctl", description="Run pods, each in its own virtual machine."
    )
    parser.add_argument("--config", help="configuration file (TOML)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND")
    verbs.required = True
    for module in (pods, views, images, system):
        module.register(verbs)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        paths.check_config(args.config)  # every command refuses what hyperd would
        client = Client(args.config)
        return args.handler(client, args) or 0
    except CommandError as e:
        print(f"hyperctl ERROR: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:  # a bug or a local error: one line unless --debug
        if args.debug:
            raise
        from ..errors import HyperError

        prefix = "" if isinstance(e, HyperError) else f"{type(e).__name__}: "
        print(f"hyperctl ERROR: {prefix}{e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

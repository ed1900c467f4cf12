"""containerd-shim-hyper-v2: the runtime v2 shim containerd runs for `io.containerd.hyper.v2`.

containerd calls it as Go's flag package reads arguments:
    containerd-shim-hyper-v2 -namespace NS -address ADDR -publish-binary BIN -id ID start
    containerd-shim-hyper-v2 -namespace NS -address ADDR -publish-binary BIN -id ID \\
        -bundle PATH delete
with the bundle as working directory and TTRPC_ADDRESS in the environment. `start`
prints the address of the shim serving the task's pod (starting it first), `delete`
cleans up after a shim that died and prints a DeleteResponse; `serve` is the shim
itself, started by `start`.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__

ACTIONS = ("start", "delete", "serve")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="containerd-shim-hyper-v2", allow_abbrev=False)
    for flag in ("-namespace", "-address", "-publish-binary", "-id", "-bundle", "-socket"):
        parser.add_argument(flag, f"-{flag}", dest=flag.lstrip("-").replace("-", "_"), default="")
    parser.add_argument("-debug", "--debug", action="store_true")
    parser.add_argument("-v", "--version", action="store_true")
    parser.add_argument("--config", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--listen-fd", type=int, default=-1, help=argparse.SUPPRESS)
    parser.add_argument("action", nargs="?", default="", choices=("", *ACTIONS))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.version:
        print(f"containerd-shim-hyper-v2:\n  Version:  {__version__}")
        return 0
    if not args.namespace:
        print("containerd-shim-hyper-v2: -namespace is required", file=sys.stderr)
        return 1
    if args.action == "start":
        from .start import start

        return start(args)
    if args.action == "delete":
        from .delete import delete

        return delete(args)
    if args.action == "serve":
        from .serve import serve

        return serve(args)
    print("containerd-shim-hyper-v2: give an action: start or delete", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

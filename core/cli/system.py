"""Verbs about the system itself: info, version, schema, validate."""

from __future__ import annotations

import argparse
import json

from .. import __version__
from .client import Client, CommandError


def register(verbs) -> None:
    verbs.add_parser("info", help="drivers, guest image, state and counts").set_defaults(
        handler=do_info
    )
    verbs.add_parser("version", help="versions of hyperctl and hyperd").set_defaults(
        handler=do_version
    )
    verbs.add_parser("schema", help="the pod file's JSON Schema").set_defaults(handler=do_schema)
    help_ = verbs.add_parser("help", help="how to use hyperctl, or one of its commands")
    help_.add_argument("topic", nargs="?", metavar="COMMAND")
    help_.set_defaults(handler=do_help)
    completion = verbs.add_parser("completion", help="a shell completion script (bash, zsh)")
    completion.add_argument("shell", choices=("bash", "zsh"))
    completion.set_defaults(handler=do_completion)
    validate = verbs.add_parser("validate", help="check a pod file without running anything")
    validate.add_argument("-y", "--yaml", action="store_true", help="the pod file is YAML")
    validate.add_argument(
        "-k",
        "--kubernetes",
        action="store_true",
        help="the file is in the Kubernetes pod form (as run -k takes)",
    )
    validate.add_argument("file")
    validate.set_defaults(handler=do_validate)


def do_info(client: Client, args) -> int:
    info = client.request("GET", "/info")
    hv = info["hypervisor"]
    lines = [
        f"Version: {info['version']}",
        f"Hypervisor: {hv.get('name')}",
    ]
    lines += [
        f"  {key.replace('_', ' ')}: {value}"
        for key, value in hv.items()
        if key not in ("name", "capabilities")
    ]
    lines.append(f"  capabilities: {', '.join(hv.get('capabilities', []))}")
    lines += _templates(info.get("templates", []))
    guest = info.get("guest", {})
    lines.append("Guest image:")
    lines += [f"  {k}: {v}" for k, v in guest.items()]
    lines.append("Drivers (selected; installed):")
    for kind, installed in info["installed"].items():
        lines.append(f"  {kind}: {info['selected'][kind]}; {', '.join(installed)}")
    lines.append(f"Network: {json.dumps(info['network'])}")
    lines += settings_lines(info.get("settings", {}))
    lines.append(f"Hooks: {', '.join(info['hooks']) or 'none'}")
    lines.append(f"State root: {info['state_root']}")
    lines.append(f"Pods: {info['pods']} ({info['running_pods']} running)")
    lines.append(f"Containers: {info['containers']}")
    lines.append(f"Images: {info['image_count']}")
    for pod, address in info.get("addresses", {}).items():
        lines.append(f"  {pod}: {address}")
    print("\n".join(lines))
    return 0


def _templates(templates: list[dict]) -> list[str]:
    """One line per VM template: its shape, then size, age and how many pods it started."""
    lines = [f"VM templates: {len(templates)}"]
    for t in templates:
        shares = ",".join(t.get("shares", [])) or "none"
        lines.append(
            f"  {t['key']}: {t['vcpus']} vCPU, {t['memory_mb']} MB, shares {shares}, "
            f"network {t['network']}, {t['accelerator']}; {t['size_bytes'] / 2**20:.1f} MiB, "
            f"age {_age(t['age_s'])}, hits {t['hits']}"
        )
    return lines


def _age(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def settings_lines(settings: dict[str, dict]) -> list[str]:
    """Each selected driver's effective settings, as its configuration table would say it."""
    lines = ["Driver settings:"]
    for driver, values in settings.items():
        lines.append(f"  [{driver}]")
        lines += [f"  {key} = {json.dumps(value)}" for key, value in values.items()]
    return lines


def do_version(client: Client, args) -> int:
    print(f"hyperctl version {__version__}")
    daemon = client.request("GET", "/version")
    print(f"hyperd version {daemon['version']} (Python {daemon['python']})")
    return 0


def do_schema(client: Client, args) -> int:
    from ..spec import PodSpec

    print(json.dumps(PodSpec.model_json_schema(by_alias=True), indent=2))
    return 0


def do_validate(client: Client, args) -> int:
    """The pod as run would send it, or what run would refuse (files fetched, host
    paths checked)."""
    from ..spec import normalised
    from .podfiles import load

    spec = load(args.file, args.yaml, args.kubernetes, args.config)
    print(json.dumps(normalised(spec), indent=2))
    return 0


def do_help(client: Client, args) -> int:
    """The same text as `hyperctl [COMMAND] --help`: both come from the parser."""
    from .main import build_parser

    parser = build_parser()
    if args.topic is None:
        parser.print_help()
        return 0
    verbs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    commands = verbs.choices  # the verbs' own parsers
    if args.topic not in commands:
        raise CommandError(f"no command {args.topic!r}; commands: {', '.join(commands)}")
    commands[args.topic].print_help()
    return 0


def do_completion(client: Client, args) -> int:
    from . import completion
    from .main import build_parser

    print(getattr(completion, args.shell)(build_parser()), end="")
    return 0

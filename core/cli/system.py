"""Verbs about the system itself: info, version, schema, validate."""

from __future__ import annotations

import json

from .. import __version__
from .client import Client


def register(verbs) -> None:
    verbs.add_parser("info", help="drivers, guest image, state and counts").set_defaults(
        handler=do_info)
    verbs.add_parser("version", help="versions of hyperctl and hyperd").set_defaults(
        handler=do_version)
    verbs.add_parser("schema", help="the pod file's JSON Schema").set_defaults(handler=do_schema)
    validate = verbs.add_parser("validate", help="check a pod file without running anything")
    validate.add_argument("-y", "--yaml", action="store_true", help="the pod file is YAML")
    validate.add_argument("file")
    validate.set_defaults(handler=do_validate)


def do_info(client: Client, args) -> int:
    info = client.request("GET", "/info")
    hv = info["hypervisor"]
    lines = [
        f"Version: {info['version']}",
        f"Hypervisor: {hv.get('name')}",
    ]
    lines += [f"  {key.replace('_', ' ')}: {value}" for key, value in hv.items()
              if key not in ("name", "capabilities")]
    lines.append(f"  capabilities: {', '.join(hv.get('capabilities', []))}")
    guest = info.get("guest", {})
    lines.append("Guest image:")
    lines += [f"  {k}: {v}" for k, v in guest.items()]
    lines.append("Drivers (selected; installed):")
    for kind, installed in info["installed"].items():
        lines.append(f"  {kind}: {info['selected'][kind]}; {', '.join(installed)}")
    lines.append(f"Network: {json.dumps(info['network'])}")
    lines.append(f"Hooks: {', '.join(info['hooks']) or 'none'}")
    lines.append(f"State root: {info['state_root']}")
    lines.append(f"Pods: {info['pods']} ({info['running_pods']} running)")
    lines.append(f"Containers: {info['containers']}")
    lines.append(f"Images: {info['image_count']}")
    for pod, address in info.get("addresses", {}).items():
        lines.append(f"  {pod}: {address}")
    print("\n".join(lines))
    return 0


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
    from ..spec import normalised
    from ..specload import load_pod_file

    spec = load_pod_file(args.file, yaml=args.yaml or None)
    print(json.dumps(normalised(spec), indent=2))
    return 0

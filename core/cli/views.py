"""Seeing what is there: list, inspect, logs, events."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .client import Client, CommandError, path_of
from .formats import add_option as add_format_option
from .formats import output
from .moments import absolute
from .tables import table

SINCE_HELP = (
    "a time (2026-01-02T15:04:05Z, UTC unless it says), seconds since the epoch,"
    " or a duration before now (90s, 10m, 2h, 1d)"
)


def register(verbs) -> None:
    listing = verbs.add_parser("list", help="list pods, containers or VMs")
    listing.add_argument("kind", nargs="?", default="pod", choices=("pod", "container", "vm"))
    listing.add_argument("-p", "--pod", help="only this pod's")
    listing.add_argument("-q", "--quiet", action="store_true", help="ids only")
    add_format_option(listing)
    listing.set_defaults(handler=do_list)

    inspect = verbs.add_parser("inspect", help="everything about pods or containers, as JSON")
    inspect.add_argument(
        "--type",
        choices=("pod", "container"),
        help="what the names are (default: a pod if one has the name)",
    )
    add_format_option(inspect)
    inspect.add_argument("names", nargs="+", metavar="POD|CONTAINER")
    inspect.set_defaults(handler=do_inspect)

    logs = verbs.add_parser("logs", help="a container's output")
    logs.add_argument("-f", "--follow", action="store_true", help="keep following")
    logs.add_argument(
        "--tail", type=tail_lines, help="only the last N lines (a number, or all: the default)"
    )
    logs.add_argument(
        "-t",
        "--timestamps",
        action="store_true",
        help="start each line with the time it was written (UTC)",
    )
    logs.add_argument("--since", help="only output from then on: " + SINCE_HELP)
    logs.add_argument("target", metavar="CONTAINER|POD")
    logs.set_defaults(handler=do_logs)

    events = verbs.add_parser("events", help="pod and container lifecycle events, as they happen")
    events.add_argument("--since", help="replay events from then on: " + SINCE_HELP)
    events.add_argument("--until", help="stop at this time: " + SINCE_HELP)
    add_format_option(events)
    events.set_defaults(handler=do_events)


# -- list -----------------------------------------------------------------------------


def do_list(client: Client, args) -> int:
    if args.kind == "container":
        query = {"pod": args.pod} if args.pod else None
        containers = client.request("GET", "/containers", query=query)
        if args.format:
            output(args.format, containers)
        elif args.quiet:
            print("\n".join(c["id"] for c in containers))
        else:
            rows = [
                (c["id"], c["name"], c["pod_id"], c["state"], _code(c["exit_code"]))
                for c in containers
            ]
            print(table(("Container ID", "Name", "POD ID", "Status", "Exit Code"), rows))
        return 0
    pods = client.request("GET", "/pods")
    if args.pod:
        pods = [p for p in pods if args.pod in (p["id"], p["name"])]
    if args.format:
        output(args.format, pods)
    elif args.quiet:
        key = "vm_name" if args.kind == "vm" else "id"
        print("\n".join(p[key] for p in pods))
    elif args.kind == "vm":
        vms = [(p["vm_name"], p["id"], p["state"]) for p in pods]
        print(table(("VM name", "POD ID", "Status"), vms))
    else:
        rows = [(p["id"], p["name"], p["vm_name"], p["state"], p["address"] or "-") for p in pods]
        print(table(("POD ID", "POD Name", "VM name", "Status", "IP"), rows))
    return 0


def _code(exit_code: int | None) -> str:
    return "-" if exit_code is None else str(exit_code)


# -- inspect --------------------------------------------------------------------------


def do_inspect(client: Client, args) -> int:
    found = [_inspect_one(client, name, args.type) for name in args.names]
    if args.format:
        output(args.format, found)
    else:
        print(json.dumps(found, indent=2))
    return 0


def _inspect_one(client: Client, name: str, kind: str | None) -> dict[str, Any]:
    if kind != "container":
        try:
            return inspect_pod(client, client.request("GET", path_of("/pods/{}", name)))
        except CommandError:
            if kind == "pod":
                raise
    try:
        container = client.request("GET", path_of("/containers/{}", name))
    except CommandError:
        raise CommandError(f"no pod or container {name}") from None
    return inspect_container(client, container)


def inspect_pod(client: Client, pod: dict[str, Any]) -> dict[str, Any]:
    spec = pod["spec"]
    containers = client.request("GET", "/containers", query={"pod": pod["id"]})
    return {
        "kind": "pod",
        "id": pod["id"],
        "name": pod["name"],
        "state": pod["state"],
        "error": pod["error"],
        "created": pod["created"],
        "started": pod["started"],
        "finished": pod["finished"],
        "vm_name": pod["vm_name"],
        "vm_pid": (pod["vm"] or {}).get("pid"),
        # The VM template the pod's VM was restored from; null: it booted.
        "vm_template": (pod["vm"] or {}).get("template"),
        "address": pod["address"] or None,
        "mac": (pod["network"] or {}).get("mac"),
        "labels": spec.get("labels", {}),
        "resource": spec.get("resource", {}),
        "ports": spec.get("portmappings", []),
        "volumes": spec.get("volumes", []),
        "containers": [
            {
                key: c[key]
                for key in ("id", "name", "image", "state", "exit_code", "started", "finished")
            }
            for c in containers
        ],
        "spec": spec,
    }


def inspect_container(client: Client, container: dict[str, Any]) -> dict[str, Any]:
    pod = client.request("GET", path_of("/pods/{}", container["pod_id"]))
    spec = container["spec"]
    return {
        "kind": "container",
        "id": container["id"],
        "name": container["name"],
        "pod_id": container["pod_id"],
        "image": container["image"],
        "image_id": container["image_id"],
        "state": container["state"],
        "exit_code": container["exit_code"],
        "created": container["created"],
        "started": container["started"],
        "finished": container["finished"],
        "address": pod["address"] or None,
        "labels": spec.get("labels", {}),
        "mounts": _mounts(pod["spec"], spec),
        "spec": spec,
    }


def _mounts(pod_spec: dict[str, Any], spec: dict[str, Any]) -> list[dict[str, Any]]:
    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    mounts = []
    for ref in spec.get("volumes", []):
        volume = volumes.get(ref["volume"], {})
        mounts.append(
            {
                "volume": ref["volume"],
                "source": volume.get("source") or None,
                "destination": ref["path"],
                "read_only": bool(ref.get("readOnly") or volume.get("readOnly")),
            }
        )
    for ref in spec.get("files", []):
        mounts.append({"file": ref["filename"], "destination": ref["path"]})
    return mounts


# -- logs and events ------------------------------------------------------------------


def tail_lines(text: str) -> int | None:
    """`--tail` as Docker takes it: a number of lines, or `all` (None: everything)."""
    if text == "all":
        return None
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"a number of lines (0 or more) or all, not {text!r}")
    return int(text)


def do_logs(client: Client, args) -> int:
    container = client.container_or_pod(args.target)
    query = {
        "follow": "1" if args.follow else None,
        "tail": args.tail,
        "since": absolute(args.since, "--since") if args.since else None,
    }
    out, err = sys.stdout.buffer, sys.stderr.buffer
    at_line_start = {"stdout": True, "stderr": True}
    for entry in client.lines("GET", path_of("/containers/{}/logs", container["id"]), query=query):
        data = entry["log"].encode("utf-8", "surrogateescape")
        if args.timestamps:
            data = _stamped(data, entry["time"], entry["stream"], at_line_start)
        target = err if entry["stream"] == "stderr" else out
        target.write(data)
        target.flush()
    return 0


def _stamped(data: bytes, time: str, stream: str, at_line_start: dict[str, bool]) -> bytes:
    """Each line that starts in `data` gets the time (an entry may end mid-line)."""
    prefix = _zulu(time).encode() + b" "
    lines = data.splitlines(keepends=True)
    stamped = [
        prefix + line if (i or at_line_start[stream]) else line for i, line in enumerate(lines)
    ]
    at_line_start[stream] = data.endswith(b"\n")
    return b"".join(stamped)


def _zulu(time: str) -> str:
    return time.replace("+00:00", "Z")


def do_events(client: Client, args) -> int:
    query = {
        "since": absolute(args.since, "--since") if args.since else None,
        "until": absolute(args.until, "--until") if args.until else None,
    }
    for event in client.lines("GET", "/events", query=query):
        if args.format:
            output(args.format, [event])
        else:
            print(describe_event(event), flush=True)
    return 0


def describe_event(event: dict[str, Any]) -> str:
    """`<time> container die <name> (exit code 3, pod p, id ...)`"""
    details = []
    if event.get("exit_code") is not None or event.get("action") == "die":
        details.append(f"exit code {_code(event.get('exit_code'))}")
    if event.get("pod"):
        details.append(f"pod {event['pod']}")
    if event["type"] == "pod" and event.get("state"):
        details.append(event["state"])
    details.append(f"id {event['id']}")
    return (
        f"{_zulu(event['time'])} {event['type']} {event['action']} {event['name']}"
        f" ({', '.join(details)})"
    )

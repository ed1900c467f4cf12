"""Pod and container verbs: run, create, start, stop, rm, exec, attach, kill, pause, ports."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .client import Client, CommandError, path_of
from .tables import table
from .terminal import DETACH_KEYS, FORWARD, Detached, Interrupted, Session


def register(verbs) -> None:
    run = verbs.add_parser("run", help="create and start a pod from an image or a pod file")
    _pod_file_options(run)
    _container_options(run)
    run.add_argument("-d", "--detach", action="store_true", help="do not attach; print the pod id")
    run.add_argument(
        "-a",
        "--attach",
        action="store_true",
        help="attach to a pod file's first container (an image's is attached unless -d)",
    )
    run.add_argument(
        "-i",
        "--interactive",
        action="store_true",
        help="keep stdin open for a later attach (an attached run always passes stdin)",
    )
    run.add_argument("--name", help="pod name")
    run.add_argument("--cpu", type=int, help="vCPUs of the pod's VM")
    run.add_argument("--memory", type=int, help="memory of the pod's VM, in MB")
    run.add_argument(
        "--publish",
        action="append",
        default=[],
        metavar="[HOSTIP:]HOST:CONTAINER[/PROTO]",
        help="map host port(s) to container port(s): 8080:80, 3000-3010:3000-3010, 0.0.0.0:8080:80",
    )
    run.add_argument(
        "-v",
        "--volume",
        action="append",
        default=[],
        metavar="HOSTDIR:PATH[:ro]",
        help="share a host directory",
    )
    run.add_argument("--rm", action="store_true", help="remove the pod when its container exits")
    run.set_defaults(handler=do_run)

    create = verbs.add_parser("create", help="create a pod (-p FILE) or a container (-c POD IMAGE)")
    create.add_argument("-c", "--container", action="store_true", help="create a container")
    _pod_file_options(create)
    create.add_argument("-d", "--detach", action="store_true", help="(accepted for compatibility)")
    create.add_argument("--name", help="container name")
    _container_options(create, with_image=False)
    create.add_argument("args", nargs=argparse.REMAINDER, help="[POD] IMAGE [COMMAND...]")
    create.set_defaults(handler=do_create)

    for verb, text in (("start", "start"), ("stop", "stop"), ("rm", "remove")):
        parser = verbs.add_parser(verb, help=f"{text} pods, or containers with -c")
        parser.add_argument("-c", "--container", action="store_true", help="containers")
        parser.add_argument("names", nargs="+", metavar="NAME")
        if verb == "stop":
            parser.add_argument(
                "-t", "--time", type=float, default=10.0, help="seconds to wait before SIGKILL"
            )
        parser.set_defaults(handler=do_lifecycle, verb=verb)

    exec_ = verbs.add_parser("exec", help="run a command in a running container")
    exec_.add_argument("-t", "--tty", action="store_true", help="allocate a terminal")
    exec_.add_argument(
        "-i",
        "--interactive",
        action="store_true",
        help="pass stdin (always done; accepted as Docker users type it)",
    )
    exec_.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE")
    exec_.add_argument("target", metavar="CONTAINER|POD")
    exec_.add_argument("command", nargs=argparse.REMAINDER)
    exec_.set_defaults(handler=do_exec)

    attach = verbs.add_parser("attach", help="attach to a container's stdio")
    attach.add_argument(
        "-t",
        "--tty",
        action="store_true",
        help="raw terminal mode (the default for a container with a terminal)",
    )
    attach.add_argument(
        "-i",
        "--interactive",
        action="store_true",
        help="pass stdin (always done; accepted as Docker users type it)",
    )
    attach.add_argument("target", metavar="CONTAINER|POD")
    attach.set_defaults(handler=do_attach)

    kill = verbs.add_parser("kill", help="send a signal to a container")
    kill.add_argument("-s", "--signal", default="KILL")
    kill.add_argument("target", metavar="CONTAINER|POD")
    kill.set_defaults(handler=do_kill)

    for verb in ("pause", "unpause"):
        parser = verbs.add_parser(verb, help=f"{verb} a pod's VM")
        parser.add_argument("pod", metavar="POD")
        parser.set_defaults(handler=do_pause, verb=verb)

    ports = verbs.add_parser("ports", help="list, add or delete a running pod's port mappings")
    ports.add_argument("action", choices=("ls", "add", "delete"))
    ports.add_argument("pod", metavar="POD")
    ports.add_argument("mappings", nargs="*", metavar="[HOSTIP:]HOST:CONTAINER[/PROTO]")
    ports.set_defaults(handler=do_ports)


def _pod_file_options(parser) -> None:
    files = parser.add_mutually_exclusive_group()
    files.add_argument("-p", "--podfile", help="pod file (JSON; YAML with -y or a .yml name)")
    files.add_argument(
        "-k", "--kubernetes", metavar="FILE", help="a pod file in the Kubernetes pod form"
    )
    parser.add_argument("-y", "--yaml", action="store_true", help="the pod file is YAML")


def _container_options(parser, with_image: bool = True) -> None:
    if with_image:
        parser.add_argument("image", nargs="?", help="image to run")
        parser.add_argument("command", nargs=argparse.REMAINDER, help="command and arguments")
    parser.add_argument("-t", "--tty", action="store_true", help="allocate a terminal")
    parser.add_argument("--env", "-e", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--entrypoint", help="override the image's entrypoint")
    parser.add_argument("--workdir", help="working directory in the container")
    parser.add_argument("--restart", choices=("never", "onFailure", "always"))
    parser.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")


# -- building specs ---------------------------------------------------------


def _pairs(items: list[str], what: str) -> dict[str, str]:
    result = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CommandError(f"{what} {item!r}: expected KEY=VALUE")
        result[key] = value
    return result


def container_from_args(args, image: str, command: list[str]) -> dict[str, Any]:
    container: dict[str, Any] = {"image": image}
    if command:
        container["command"] = command
    if args.entrypoint is not None:
        container["entrypoint"] = [args.entrypoint] if args.entrypoint else []
    if args.workdir:
        container["workdir"] = args.workdir
    env = _pairs(args.env, "--env")
    if env:
        container["envs"] = [{"env": k, "value": v} for k, v in env.items()]
    if args.tty:
        container["tty"] = True
    if args.restart:
        container["restartPolicy"] = args.restart
    labels = _pairs(args.label, "--label")
    if labels:
        container["labels"] = labels
    return container


def split_mapping(text: str, what: str) -> tuple[str, str, str, str]:
    """[HOSTIP:]HOST:CONTAINER[/PROTO] -> (host ip or "", host, container, protocol)."""
    spec, _, protocol = text.partition("/")
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not all(parts[-2:]) or parts[0] == "":
        raise CommandError(f"{what} {text!r}: expected [HOSTIP:]HOST:CONTAINER[/tcp|udp]")
    host_ip = parts[0] if len(parts) == 3 else ""
    return host_ip, parts[-2], parts[-1], protocol or "tcp"


def parse_publish(text: str) -> dict[str, str]:
    """A pod file's port mapping from --publish; ports may be ranges like 3000-3010."""
    host_ip, host, guest, protocol = split_mapping(text, "--publish")
    mapping = {"hostPort": host, "containerPort": guest, "protocol": protocol}
    if host_ip:
        mapping["hostIp"] = host_ip
    return mapping


def add_volumes(spec: dict[str, Any], container: dict[str, Any], volumes: list[str]) -> None:
    for index, text in enumerate(volumes):
        parts = text.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
            raise CommandError(f"-v {text!r}: expected HOSTDIR:PATH[:ro]")
        readonly = len(parts) == 3 and parts[2] == "ro"
        name = f"volume{index}"
        spec.setdefault("volumes", []).append(
            {
                "name": name,
                "source": os.path.abspath(parts[0]),
                "format": "vfs",
                "readOnly": readonly,
            }
        )
        container.setdefault("volumes", []).append(
            {"volume": name, "path": parts[1], "readOnly": readonly}
        )


def pod_from_args(args) -> dict[str, Any]:
    if args.podfile or args.kubernetes:
        from .podfiles import from_args

        spec = from_args(args)
    else:
        if not args.image:
            raise CommandError("run needs an IMAGE or a pod file (-p FILE, -k FILE)")
        container = container_from_args(args, args.image, args.command)
        spec = {"containers": [container]}
        add_volumes(spec, container, args.volume)
        if args.publish:
            spec["portmappings"] = [parse_publish(p) for p in args.publish]
    if args.name:
        spec["id"] = args.name
    resource = spec.setdefault("resource", {})
    if args.cpu is not None:
        resource["vcpu"] = args.cpu
    if args.memory is not None:
        resource["memory"] = args.memory
    return spec


def ensure_images(client: Client, spec: dict[str, Any]) -> None:
    """Pull what is missing first, with progress on a terminal as `pull` shows it (off
    one, nothing: `run`'s output is the container's)."""
    from .images import pull

    for image in dict.fromkeys(c.get("image", "") for c in spec.get("containers", [])):
        if not image:
            continue
        try:
            client.request("GET", path_of("/images/{}", image))
        except CommandError as e:
            if e.status is not None and e.status >= 500:  # hyperd could not look (its disk
                raise  # is full...): the image may well be there, and pulling is no answer
            pull(client, image, summary=False)


# -- verbs ------------------------------------------------------------------


def do_run(client: Client, args) -> int:
    from .run import run_attached, run_detached

    from_file = bool(args.podfile or args.kubernetes)
    detach = args.detach or (from_file and not args.attach)
    if detach and args.rm:
        raise CommandError(
            "--rm removes the pod when an attached run ends: with a detached "
            "pod (-d, or a pod file without -a) use hyperctl rm"
        )
    spec = pod_from_args(args)
    ensure_images(client, spec)
    if detach:
        return run_detached(client, spec, stdin_open=args.interactive)
    return run_attached(client, spec, args.tty, args.rm)


def do_create(client: Client, args) -> int:
    if not args.container:
        if not (args.podfile or args.kubernetes):
            raise CommandError("create needs a pod file (-p FILE, -k FILE), or -c POD IMAGE")
        args.image, args.command, args.volume, args.publish = None, [], [], []
        args.cpu = args.memory = None
        spec = pod_from_args(args)
        ensure_images(client, spec)
        pod = client.request("POST", "/pods", {"spec": spec, "start": False})
        print(f"POD id is {pod['id']}")
        return 0
    if len(args.args) < 2:
        raise CommandError("create -c needs a POD and an IMAGE")
    pod, image, *command = args.args
    container = container_from_args(args, image, command)
    if args.name:
        container["name"] = args.name
    ensure_images(client, {"containers": [container]})
    created = client.request("POST", path_of("/pods/{}/containers", pod), {"spec": container})
    print(f"Container ID is {created['id']}")
    return 0


def do_lifecycle(client: Client, args) -> int:
    failed = False
    for name in args.names:
        try:
            _one_lifecycle(client, args, name)
        except CommandError as e:
            print(f"hyperctl ERROR: {e}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def _one_lifecycle(client: Client, args, name: str) -> None:
    kind = "containers" if args.container else "pods"
    if args.verb == "rm":
        answer = client.request("DELETE", path_of("/" + kind + "/{}", name))
        if args.container:
            print(f"container {answer['message']} is successfully deleted!")
        else:
            print(f"Pod({answer['message']}) is successfully deleted!")
        return
    query = {"t": args.time} if args.verb == "stop" else None
    record = client.request("POST", path_of("/" + kind + "/{}/" + args.verb, name), query=query)
    if args.verb == "start":
        if args.container:
            print(f"Successfully started container {record['name']}")
        else:
            print(f"Successfully started the Pod({record['id']})")
    elif not args.container:
        print(f"Successfully stopped the Pod({record['id']})")


def do_exec(client: Client, args) -> int:
    """An exec lives as long as its session: hyperd kills it if hyperctl goes first."""
    if not args.command:
        raise CommandError("exec needs a command")
    container = client.container_or_pod(args.target)
    body = {"command": args.command, "tty": args.tty, "env": args.env}
    conn = client.upgrade(path_of("/containers/{}/exec", container["id"]), body)
    session = Session(conn, args.tty, stdin=True, detach_keys=DETACH_KEYS, interrupt=FORWARD)
    try:
        return session.run()
    except Interrupted as e:
        return e.exit_code
    except Detached:
        print("detached; the command keeps running", file=sys.stderr)
        return 0


def do_attach(client: Client, args) -> int:
    """Attaching does not own the container: leaving it (detach keys, a second
    interrupt) leaves it running."""
    container = client.container_or_pod(args.target)
    tty = args.tty or bool(container["spec"].get("tty"))
    conn = client.upgrade(path_of("/containers/{}/attach", container["id"]))
    session = Session(conn, tty, stdin=True, detach_keys=DETACH_KEYS, interrupt=FORWARD)
    try:
        return session.run()
    except (Detached, Interrupted) as e:
        print(f"detached from {container['name']}", file=sys.stderr)
        return e.exit_code if isinstance(e, Interrupted) else 0


def do_kill(client: Client, args) -> int:
    container = client.container_or_pod(args.target)
    client.request(
        "POST", path_of("/containers/{}/kill", container["id"]), query={"signal": args.signal}
    )
    return 0


def do_pause(client: Client, args) -> int:
    pod = client.request("POST", path_of("/pods/{}/" + args.verb, args.pod))
    print(f"Successfully {args.verb}d the Pod({pod['id']})")
    return 0


def parse_mapping(text: str) -> list[dict[str, Any]]:
    """[HOSTIP:]HOST:CONTAINER[/PROTO], ports or equal-length ranges (3000-3001:80-81):
    one mapping per port."""
    from ..specfields import port_bounds

    host_ip, host, guest, protocol = split_mapping(text, "port mapping")
    try:
        hosts, guests = port_bounds(host), port_bounds(guest)
    except ValueError as e:
        raise CommandError(f"port mapping {text!r}: {e}") from None
    host_ports, guest_ports = range(hosts[0], hosts[1] + 1), range(guests[0], guests[1] + 1)
    if len(host_ports) != len(guest_ports):
        raise CommandError(f"port mapping {text!r}: the host and container ranges differ in length")
    return [
        {"protocol": protocol, "host_ip": host_ip, "host_port": h, "container_port": g}
        for h, g in zip(host_ports, guest_ports, strict=True)
    ]


def do_ports(client: Client, args) -> int:
    if args.action == "ls":
        forwards = client.request("GET", path_of("/pods/{}/ports", args.pod))
        rows = [
            (f"{f['host_ip']}:{f['host_port']}", str(f["guest_port"]), f["protocol"])
            for f in forwards
        ]
        print(table(("Host", "Container Port", "Protocol"), rows))
        return 0
    if not args.mappings:
        raise CommandError(f"ports {args.action} needs at least one mapping")
    route = "/pods/{}/ports" if args.action == "add" else "/pods/{}/ports/delete"
    mappings = [m for text in args.mappings for m in parse_mapping(text)]
    client.request("POST", path_of(route, args.pod), {"mappings": mappings})  # all or none
    return 0

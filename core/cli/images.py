"""Image verbs: pull, push, tag, images, rmi, load, save, login, logout."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

from .client import Client, CommandError, path_of
from .formats import add_option as add_format_option
from .formats import output
from .tables import human_size, table


def register(verbs) -> None:
    pull_ = verbs.add_parser("pull", help="pull an image from its registry")
    pull_.add_argument("image")
    pull_.set_defaults(handler=do_pull)

    push = verbs.add_parser("push", help="push a local image to a registry")
    push.add_argument("image")
    push.add_argument("destination", nargs="?", help="where to (default: the image's name)")
    push.set_defaults(handler=do_push)

    tag = verbs.add_parser("tag", help="give a local image another name")
    tag.add_argument("source", metavar="SOURCE")
    tag.add_argument("target", metavar="TARGET")
    tag.set_defaults(handler=do_tag)

    images = verbs.add_parser("images", help="list local images")
    images.add_argument("-q", "--quiet", action="store_true", help="image ids only")
    add_format_option(images)
    images.set_defaults(handler=do_images)

    rmi = verbs.add_parser("rmi", help="remove images")
    rmi.add_argument("-f", "--force", action="store_true", help="even if a container uses it")
    rmi.add_argument("images", nargs="+", metavar="IMAGE")
    rmi.set_defaults(handler=do_rmi)

    load = verbs.add_parser("load", help="load images from an OCI or docker archive")
    load.add_argument("-i", "--input", required=True, help="archive file")
    load.set_defaults(handler=do_load)

    save = verbs.add_parser("save", help="save images to an OCI archive")
    save.add_argument("-o", "--output", required=True, help="archive file")
    save.add_argument("images", nargs="+", metavar="IMAGE")
    save.set_defaults(handler=do_save)

    login = verbs.add_parser("login", help="store credentials for a registry")
    login.add_argument("-u", "--username")
    login.add_argument("-p", "--password")
    login.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    login.add_argument("server", nargs="?", default="docker.io")
    login.set_defaults(handler=do_login)

    logout = verbs.add_parser("logout", help="forget the credentials stored for a registry")
    logout.add_argument("server", nargs="?", default="docker.io")
    logout.set_defaults(handler=do_logout)


def pull(client: Client, image: str, summary: bool = True) -> dict:
    return _with_progress(
        client, "/images/pull", {"reference": image}, "pulled", "pull", image, summary
    )


def _with_progress(
    client: Client, path: str, body: dict, last: str, verb: str, image: str, summary: bool = True
) -> dict:
    """Draw a transfer's progress lines (off a terminal, a summary unless not wanted);
    the final event (status `last`) is returned."""
    from .progress import ProgressRenderer

    renderer = ProgressRenderer(sys.stderr, verb=f"{verb}ed", summary=summary)
    result: dict = {}
    try:
        for event in client.lines("POST", path, body):
            if event.get("status") == last:
                result = event
            else:
                renderer.update(event)
    finally:
        renderer.close()
    if not result:  # the stream ended without its last word: hyperd went away mid-transfer
        raise CommandError(f"{verb} of {image} did not finish: hyperd stopped answering")
    return result


def do_pull(client: Client, args) -> int:
    result = pull(client, args.image)
    print(f"Successfully pulled {result.get('reference', args.image)} ({result.get('id', '')})")
    return 0


def do_push(client: Client, args) -> int:
    body = {"reference": args.image, "destination": args.destination}
    result = _with_progress(client, "/images/push", body, "push complete", "push", args.image)
    print(f"Successfully pushed {result.get('reference', args.image)} ({result.get('digest', '')})")
    return 0


def do_tag(client: Client, args) -> int:
    client.request("POST", "/images/tag", {"source": args.source, "target": args.target})
    return 0


def do_images(client: Client, args) -> int:
    images = client.request("GET", "/images")
    if args.format:
        output(args.format, images)
        return 0
    if args.quiet:
        print("\n".join(dict.fromkeys(i["id"].removeprefix("sha256:")[:12] for i in images)))
        return 0
    rows = [
        (
            i["repository"],
            i["tag"],
            i["id"].removeprefix("sha256:")[:12],
            i["created"][:19].replace("T", " ") or "-",
            human_size(i["size"]),
        )
        for i in images
    ]
    print(table(("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "VIRTUAL SIZE"), rows))
    return 0


def do_rmi(client: Client, args) -> int:
    failed = False
    for image in args.images:
        try:
            removed = client.request(
                "DELETE", path_of("/images/{}", image), query={"force": "1" if args.force else None}
            )
            for line in removed:
                print(line)
        except CommandError as e:
            print(f"hyperctl ERROR: {e}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def do_load(client: Client, args) -> int:
    source = Path(args.input)
    if not source.is_file():
        raise CommandError(f"{source}: no such file")
    try:
        loaded = client.upload("/images/load", source)
    except CommandError as e:  # hyperd's words are about the archive: say which one
        raise CommandError(f"{source}: {e}") from None
    for reference in loaded:
        print(f"Loaded image: {reference}")
    return 0


def do_save(client: Client, args) -> int:
    target = Path(args.output)
    partial = target.with_name(target.name + ".partial")
    try:
        _writable(partial, target)  # before hyperd writes a whole archive for nothing
        client.download("/images/save", {"references": args.images}, partial, shown_as=target)
        try:
            partial.replace(target)
        except OSError as e:
            raise CommandError(f"cannot write {target}: {e.strerror or e}") from None
    finally:
        partial.unlink(missing_ok=True)
    return 0


def _writable(partial: Path, target: Path) -> None:
    if target.is_dir():
        raise CommandError(f"cannot write {target}: it is a directory")
    try:
        partial.open("wb").close()
    except OSError as e:
        raise CommandError(f"cannot write {target}: {e.strerror or e}") from None


def do_login(client: Client, args) -> int:
    username = args.username or input("Username: ")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = args.password or getpass.getpass("Password: ")
    body = {"registry": args.server, "username": username, "password": password}
    print(client.request("POST", "/login", body)["message"])
    return 0


def do_logout(client: Client, args) -> int:
    print(client.request("POST", "/logout", {"registry": args.server})["message"])
    return 0

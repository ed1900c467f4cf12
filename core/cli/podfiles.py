"""Reading a pod file the way `run`, `create` and `validate` all do.

-p FILE (JSON, YAML with -y or a .yml name) or -k FILE (the Kubernetes pod
form); local `files[].uri` are read and http(s) ones fetched here, with the
user's own rights, through the configuration's `[fetch]` settings; what a
runtime would refuse is refused here too, so `validate` says what `run` would.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..fetch import Fetcher


class _ConfiguredFetch:
    """Fetches with the configuration's [fetch] settings, read only if a URI needs it."""

    def __init__(self, config_file: str | None) -> None:
        self.config_file = config_file
        self._fetcher: Fetcher | None = None

    def __call__(self, uri: str) -> bytes:
        if self._fetcher is None:
            from .. import config
            from ..fetch import Fetcher

            settings = config.load(self.config_file).fetch
            self._fetcher = Fetcher(
                proxy=settings.proxy,
                ca_file=str(settings.ca_file or ""),
                max_bytes=settings.max_bytes,
                timeout=settings.timeout,
            )
        return self._fetcher(uri)


def load(path: str, yaml: bool, kubernetes: bool, config_file: str | None):
    """The checked PodSpec of a pod file; UserError (one line) if run would refuse it."""
    from ..container_config import check_runnable
    from ..errors import UserError
    from ..specload import load_pod_file

    spec = load_pod_file(
        path, yaml=yaml or None, kubernetes=kubernetes, fetch=_ConfiguredFetch(config_file)
    )
    try:
        # hyperd is taken to be root (a user of a socket_group may not be): hyperd
        # checks again with its own rights before it creates anything.
        check_runnable(spec, hyperd_is_root=True)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
    for warning in warnings(spec):
        print(f"hyperctl: warning: {path}: {warning}", file=sys.stderr)
    return spec


def warnings(spec) -> list[str]:
    """What the pod file gets, though probably not what its author wrote it for."""
    found = []
    for i, item in enumerate(spec.files):
        if item.encoding == "base64":
            data, valid = item.decoded()
            if not valid:
                found.append(
                    f"files[{i}] ({item.name}): content is not valid base64; the "
                    f"{len(data)} bytes before the first bad group are used, as "
                    "the original did"
                )
    return found


def from_args(args) -> dict[str, Any]:
    """The normalised spec of -p/-k, as hyperd receives it."""
    from ..spec import normalised

    path = args.kubernetes or args.podfile
    return normalised(load(path, args.yaml, bool(args.kubernetes), args.config))

"""A Cloud Hypervisor snapshot as a VM template, and a pod's clone of it.

`vm.snapshot` of a paused VM writes three files into an existing directory
(a `file://` URL): `config.json` (its VmConfig, as Cloud Hypervisor keeps it),
`state.json` (vCPU, memory-manager and device state) and `memory-ranges` (the
guest's RAM). `vm.restore` reads them back from a directory of the same shape.

A clone's directory holds the template's config.json with the pod's own
back-ends put in (vsock socket, serial and console files, virtio-fs sockets, tap
and MAC: everything else, devices and ids included, stays the template's) and
links to the template's state.json and memory-ranges. Cloud Hypervisor only
reads those two (it copies guest RAM out of memory-ranges, or with `OnDemand`
faults it in page by page), so no clone ever writes a template's file.
"""

from __future__ import annotations

import copy
import errno
import json
import os
from pathlib import Path
from typing import Any

from hypercontainer.errors import DriverError

CONFIG, STATE, MEMORY = "config.json", "state.json", "memory-ranges"
FILES = (CONFIG, STATE, MEMORY)

# The back-ends of a clone, per device list: how a device is matched with the
# pod's, and the fields that are the pod's own.
BACK_ENDS = {"fs": ("tag", ("socket",)), "net": ("id", ("tap", "mac"))}
OWN_SECTIONS = ("serial", "console", "vsock")  # the pod's files and sockets, as a whole


def url(directory: Path) -> str:
    return f"file://{directory}"


def restore_config(directory: Path) -> dict[str, Any]:
    """The RestoreConfig of a clone: guest RAM faulted in from the template's file as
    the guest touches it (never copied whole up front), the VM left paused."""
    return {
        "source_url": url(directory),
        "prefault": False,
        "memory_restore_mode": "OnDemand",
        "resume": False,
    }


def clone_config(template: dict[str, Any], pod: dict[str, Any]) -> dict[str, Any]:
    """The template's VmConfig with the back-ends of `pod` (the VmConfig a cold boot of
    the pod would send). Their devices must match: same tags, same ids."""
    config = copy.deepcopy(template)
    for section in OWN_SECTIONS:
        if section in pod:
            config[section] = {**config.get(section, {}), **pod[section]}
    for key, (identity, fields) in BACK_ENDS.items():
        own = {device[identity]: device for device in pod.get(key) or []}
        devices = config.get(key) or []
        if sorted(str(device.get(identity)) for device in devices) != sorted(own):
            raise DriverError(f"the template's {key} devices are not the pod's")
        for device in devices:
            for field in fields:
                if field in own[device[identity]]:
                    device[field] = own[device[identity]][field]
                else:
                    device.pop(field, None)
    return config


def make_clone(template: Path, clone: Path, pod_config: dict[str, Any]) -> None:
    """Fill the new directory `clone` from the snapshot in `template` for one pod."""
    try:
        config = json.loads((template / CONFIG).read_text())
    except (OSError, ValueError) as e:
        raise DriverError(f"template {template.name}: unreadable {CONFIG}: {e}") from None
    clone.mkdir(mode=0o700)
    (clone / CONFIG).write_text(json.dumps(clone_config(config, pod_config)))
    for name in (STATE, MEMORY):
        _link(template / name, clone / name)


def _link(source: Path, target: Path) -> None:
    """A hard link where both are on one file system (it keeps the file even if the
    template is dropped meanwhile), a symbolic link otherwise; never a copy."""
    try:
        os.link(source, target)
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EPERM):
            raise DriverError(f"linking {source.name} of the template: {e.strerror}") from None
        target.symlink_to(source)

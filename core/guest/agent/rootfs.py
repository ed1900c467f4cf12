"""A container's root filesystem: host shares mounted once, and an overlay of the layers.

The image layers come from the `hc_layers` share (9p, read-only); the upper and
work directories of the overlay, and any opaque-directory masks, live in the
container's directory on the guest's tmpfs.
"""

from __future__ import annotations

import os
import threading

from . import mounts
from .errors import Failure
from .log import timed
from .settings import Settings
from .writable import WRITABLE

LAYERS_TAG = "hc_layers"


class Shares:
    """Host directories shared with the guest, each mounted on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._mounted: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, tag: str, readonly: bool) -> str:
        """The guest directory of share `tag`."""
        with self._lock:
            if tag in self._mounted:
                return self._mounted[tag]
            target = self.settings.path("shares", tag)
            if self.settings.shares_dir is not None:  # tests: a host directory per tag
                source = os.path.join(self.settings.shares_dir, tag)
                if not os.path.isdir(source):
                    raise Failure(f"no share {tag}")
                mounts.bind(source, target, readonly)
            else:
                with timed("share mounted", tag=tag):
                    self._mount_share(tag, target, readonly)
            self._mounted[tag] = target
            return target

    def _mount_share(self, tag: str, target: str, readonly: bool) -> None:
        """9p (QEMU), else a disk whose serial is the tag or virtio-fs (Cloud Hypervisor)."""
        ro = ",ro" if readonly else ""
        kind, device = mounts.find_share(tag)
        if kind == "9p":
            options = self.settings.ninep_options + ro
            if tag == LAYERS_TAG:
                options += ",cache=loose"  # layers never change: cache all of them
            mounts.mount(tag, target, "9p", options)
        elif kind == "disk":
            mounts.mount(device, target, "ext4", "ro")
        else:  # virtiofsd cannot enforce read-only itself: the mount must
            mounts.mount(tag, target, "virtiofs", ro.lstrip(","))

    def unmount_all(self) -> None:
        with self._lock:
            for target in self._mounted.values():
                try:
                    mounts.unmount(target)
                except Failure:
                    pass  # powering off anyway
            self._mounted.clear()


def mount_overlay(
    directory: str, shares: Shares, layers: list[str], opaque: dict[str, list[str]]
) -> None:
    """Mount <directory>/rootfs: `layers` (bottom first) below the container's writable
    layer (writable.mount_writable)."""
    if layers:
        root = shares.get(LAYERS_TAG, readonly=True)
        lowers = []
        for index, layer in enumerate(layers):
            if not os.path.isdir(os.path.join(root, layer)):
                raise Failure(f"layer {layer} not found in the layer share")
            if layer in opaque:
                lowers.append(_opaque_mask(directory, index, opaque[layer]))
            lowers.append(layer)
        lower = ":".join(reversed(lowers))  # overlayfs wants the top-most first
    else:  # an image without layers: start from an empty directory
        root = os.path.join(directory, "empty")
        os.mkdir(root)
        lower = "."
    writable = os.path.join(directory, WRITABLE)
    options = f"lowerdir={lower},upperdir={writable}/upper,workdir={writable}/work"
    # Lower directories are relative to the share (mount's working directory)
    # to keep the option string short: the kernel takes at most a page.
    mounts.mount("overlay", os.path.join(directory, "rootfs"), "overlay", options, cwd=root)


def _opaque_mask(directory: str, index: int, opaque_dirs: list[str]) -> str:
    """A layer to put right below layer `index`, marking its opaque directories.

    9p does not pass the trusted.overlay.opaque attribute of the host's layer,
    so the mark is made here, on the guest's tmpfs: a lookup stops at an opaque
    directory of the mask, hiding the layers below while the layer above keeps
    its entries.
    """
    mask = os.path.join(directory, f"mask{index}")
    for opaque_dir in opaque_dirs:
        path = os.path.join(mask, opaque_dir.lstrip("/"))
        os.makedirs(path, exist_ok=True)
        os.setxattr(path, "trusted.overlay.opaque", b"y")
    return mask

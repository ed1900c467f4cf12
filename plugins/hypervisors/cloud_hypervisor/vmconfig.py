"""The VmConfig body of `vm.create`, built from a pod's VMSpec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypercontainer.drivers import NetworkAttachment, VMSpec
from hypercontainer.errors import UserError

AGENT_VSOCK_PORT = 1024  # the guest agent listens here when it has no virtio-serial port
GUEST_CID = 3  # the first CID a guest may have; the unix socket tells VMs apart
NET_ID = "net0"  # the pod's one interface
MIB = 1024 * 1024


def vm_config(
    spec: VMSpec,
    vsock_socket: Path,
    hvc_log: Path,
    fs: list[dict[str, Any]] | None = None,
    disks: list[dict[str, Any]] | None = None,
    shared_memory: bool = False,
) -> dict[str, Any]:
    """VmConfig for the spec; `fs` / `disks` carry the shares, already prepared.

    vhost-user devices (virtio-fs) need guest memory the VMM can share with
    virtiofsd: `shared_memory` must be set for any VM that may get one.
    """
    if spec.vcpus < 1 or spec.memory_mb < 1:
        raise UserError(f"pod {spec.pod_id}: vcpus and memory must be at least 1")
    config: dict[str, Any] = {
        "payload": {
            "kernel": str(spec.kernel),
            "initramfs": str(spec.initrd),
            "cmdline": " ".join(spec.kernel_args),
        },
        "cpus": {"boot_vcpus": spec.vcpus, "max_vcpus": spec.vcpus},
        "memory": {"size": spec.memory_mb * MIB, "shared": shared_memory or bool(fs)},
        "serial": {"mode": "File", "file": str(spec.console_log)},
        "console": {"mode": "File", "file": str(hvc_log)},
        "vsock": {"cid": GUEST_CID, "socket": str(vsock_socket)},
        "rng": {"src": "/dev/urandom"},
    }
    net = net_config(spec.network)
    if net:
        config["net"] = [net]
    if fs:
        config["fs"] = fs
    if disks:
        config["disks"] = disks
    return config


def net_config(attachment: NetworkAttachment | None) -> dict[str, Any] | None:
    """The NetConfig of the pod's one interface, or None for no network."""
    if attachment is None or attachment.kind == "none":
        return None
    if attachment.kind == "user":
        raise UserError('cloud-hypervisor has no user-mode networking: use network = "bridge"')
    if attachment.kind != "tap" or not attachment.tap:
        raise UserError(f"cloud-hypervisor cannot attach a network of kind {attachment.kind!r}")
    net: dict[str, Any] = {"tap": attachment.tap, "id": NET_ID}
    if attachment.mac:
        net["mac"] = attachment.mac
    return net


def template_net_config(mac: str) -> dict[str, Any]:
    """The interface of a template guest: no tap of ours (Cloud Hypervisor makes one of
    its own, connected to nothing, gone with the VM); each clone gets the pod's tap."""
    return {"id": NET_ID, "mac": mac}

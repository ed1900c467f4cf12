"""A CRI pod on the pod network: containerd's CNI makes the pod's network namespace and
the VM joins it (tap + tc mirroring), with the address CNI gave the pod. containerd runs
inside a network namespace this test makes, so the CNI bridge never touches the host's
network; one VM."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys

import pytest

from tests.support.containerd import Containerd
from tests.support.cri import NAMESPACE, POD_NETWORK, Cri, Pod, nothing_left, until

pytestmark = [
    pytest.mark.vm,
    pytest.mark.root,
    pytest.mark.skipif(
        os.geteuid() != 0
        or not shutil.which("containerd")
        or not os.path.exists("/usr/lib/cni/bridge"),
        reason="needs root, containerd and containernetworking-plugins",
    ),
]

SUBNET = "10.99.7"


def conflist(ipam_dir: str) -> dict:
    return {
        "cniVersion": "1.0.0",
        "name": "shim-test",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "shimbr0",
                "isGateway": True,
                "ipMasq": False,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": f"{SUBNET}.0/24"}]],
                    "dataDir": ipam_dir,
                },
            }
        ],
    }


@pytest.fixture(scope="module")
def node():
    """A network namespace standing for the node, with containerd (and so hyperd) in it."""
    name = f"shim-node-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    daemon = Containerd(netns=f"/run/netns/{name}")
    (daemon.root / "cni" / "10-shim.conflist").write_text(
        json.dumps(conflist(str(daemon.root / "ipam")))
    )
    try:
        daemon.start()
        daemon.import_images(namespace=NAMESPACE)
        yield name, daemon
    finally:
        daemon.stop()
        subprocess.run(["ip", "netns", "delete", name], check=False)


def test_the_vm_joins_the_pod_network_namespace_cni_made(node, tmp_path) -> None:
    name, containerd = node
    cri = Cri(containerd.address, tmp_path / "protos")
    pod = Pod(cri, "net", tmp_path, network=POD_NETWORK)
    try:
        server = pod.container(
            "server",
            [
                "sh",
                "-c",
                "mkdir /www; echo hello-cni > /www/index.html; exec httpd -f -p 8080 -h /www",
            ],
        )
        address = cri.PodSandboxStatus(
            cri.message("PodSandboxStatusRequest", pod_sandbox_id=pod.id)
        ).status.network.ip
        assert address.startswith(f"{SUBNET}.")
        inside = cri.ExecSync(
            cri.message(
                "ExecSyncRequest",
                container_id=server,
                timeout=60,
                cmd=["ip", "-4", "-o", "addr", "show"],
            )
        )
        assert f" {address}/24 " in inside.stdout.decode(), inside.stdout
        assert containerd.hyperctl("list").stdout.count(address) == 1  # hyperd knows it too

        def answer() -> str:  # from the node, through the CNI bridge into the VM
            fetch = subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    name,
                    sys.executable,
                    "-c",
                    "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen("
                    f"'http://{address}:8080/', timeout=5).read().decode())",
                ],
                capture_output=True,
                text=True,
                timeout=30,
            )
            return fetch.stdout

        until(lambda: answer() == "hello-cni\n", "the pod's web server to answer")
    finally:
        pod.remove()
        cri.close()
    nothing_left(containerd)

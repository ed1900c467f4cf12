"""A CRI v1 client generated in the test run from the CRI api.proto (tests/data/specs/cri),
gogoproto stripped, compiled by grpcio-tools: gRPC over containerd's own socket, as a
kubelet speaks to containerd's CRI plugin."""

from __future__ import annotations

import re
import time
from pathlib import Path

import grpc
from hypercontainer import mounts
from hypercontainer.shim.protogen import Protos, descriptor_set

from .containerd import BUSYBOX, Containerd

CRI_PROTO = Path(__file__).resolve().parents[1] / "data" / "specs" / "cri"
NAMESPACE = "k8s.io"  # where the CRI plugin keeps its images and containers
POD_NETWORK, NODE_NETWORK = 0, 2  # NamespaceMode: CNI's namespace, or the host's
CRI_LOG = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d) (stdout|stderr) (F|P) (.*)$")


class Cri:
    def __init__(self, socket_path: str, cache_dir: Path) -> None:
        self.protos = Protos(descriptor_set(CRI_PROTO, ["api.proto"], cache_dir))
        self.channel = grpc.insecure_channel(f"unix://{socket_path}")

    def message(self, type_name: str, /, **fields):
        return self.protos.message(f"runtime.v1.{type_name}")(**fields)

    def call(self, method: str, request, timeout: float = 300):
        """`RuntimeService.<method>` (or ImageService, whichever has it)."""
        for service in ("runtime.v1.RuntimeService", "runtime.v1.ImageService"):
            methods = self.protos.service(service).methods_by_name
            if method in methods:
                answer = self.protos.message(methods[method].output_type.full_name)
                stub = self.channel.unary_unary(
                    f"/{service}/{method}",
                    request_serializer=type(request).SerializeToString,
                    response_deserializer=answer.FromString,
                )
                return stub(request, timeout=timeout)
        raise KeyError(method)

    def __getattr__(self, method: str):
        if not method[:1].isupper():
            raise AttributeError(method)
        return lambda request, timeout=300: self.call(method, request, timeout)

    def close(self) -> None:
        self.channel.close()


def until(condition, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


class Pod:
    """A sandbox made through CRI, with helpers for its containers."""

    def __init__(self, cri: Cri, name: str, logs: Path, network: int = NODE_NETWORK) -> None:
        self.cri, self.logs = cri, logs
        namespace_options = cri.message("NamespaceOption", network=network)
        self.config = cri.message(
            "PodSandboxConfig",
            hostname=name,
            log_directory=str(logs),
            metadata=cri.message(
                "PodSandboxMetadata", name=name, namespace="shim-test", uid=f"uid-{name}"
            ),
            linux=cri.message(
                "LinuxPodSandboxConfig",
                security_context=cri.message(
                    "LinuxSandboxSecurityContext", namespace_options=namespace_options
                ),
            ),
        )
        answer = cri.RunPodSandbox(
            cri.message("RunPodSandboxRequest", config=self.config, runtime_handler="hyper")
        )
        self.id = answer.pod_sandbox_id

    def container(self, name: str, command: list[str], **fields) -> str:
        config = self.cri.message(
            "ContainerConfig",
            metadata=self.cri.message("ContainerMetadata", name=name),
            image=self.cri.message("ImageSpec", image=BUSYBOX),
            command=command,
            log_path=f"{name}.log",
            **fields,
        )
        created = self.cri.CreateContainer(
            self.cri.message(
                "CreateContainerRequest",
                pod_sandbox_id=self.id,
                config=config,
                sandbox_config=self.config,
            )
        )
        self.cri.StartContainer(
            self.cri.message("StartContainerRequest", container_id=created.container_id)
        )
        return created.container_id

    def status(self, container_id: str):
        return self.cri.ContainerStatus(
            self.cri.message("ContainerStatusRequest", container_id=container_id)
        ).status

    def sandbox_state(self) -> int:
        return self.cri.PodSandboxStatus(
            self.cri.message("PodSandboxStatusRequest", pod_sandbox_id=self.id)
        ).status.state

    def log_lines(self, name: str) -> list[tuple[str, str]]:
        lines = (self.logs / f"{name}.log").read_text().splitlines()
        parsed = [CRI_LOG.match(line) for line in lines]
        assert all(parsed), lines  # every line is in CRI format
        return [(m.group(2), m.group(4)) for m in parsed]

    def remove(self) -> None:
        self.cri.StopPodSandbox(self.cri.message("StopPodSandboxRequest", pod_sandbox_id=self.id))
        self.cri.RemovePodSandbox(
            self.cri.message("RemovePodSandboxRequest", pod_sandbox_id=self.id)
        )


def nothing_left(containerd: Containerd, namespace: str = NAMESPACE) -> None:
    # containerd cleans up after a dead shim in the background: `delete` per task (which
    # ends the VM), then it removes the task's bundle. Wait for all of it, then nothing of
    # the pod may remain (bundles: of containerd `namespace`).
    bundles = containerd.root / "state" / "io.containerd.runtime.v2.task" / namespace

    def leftovers() -> list[str]:
        return (
            [f"qemu {pid}" for pid in containerd.qemu_pids()]
            + [f"shim {pid}" for pid in containerd.shim_pids()]
            + [f"mount {path}" for path in mounts.mounted_under(str(containerd.root))]
            + [f"bundle {path.name}" for path in bundles.glob("*")]
        )

    deadline = time.monotonic() + 90
    while left := leftovers():
        assert time.monotonic() < deadline, f"left 90 s after the pod's removal: {left}"
        time.sleep(0.2)
    assert not list((containerd.hyperd_root / "s" / "pods").glob("*"))
    assert containerd.hyperctl("list").stdout.strip().splitlines()[1:] == []

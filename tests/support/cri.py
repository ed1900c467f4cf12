"""A CRI v1 client generated in the test run from the CRI api.proto (tests/data/specs/cri),
gogoproto stripped, compiled by grpcio-tools: gRPC over containerd's own socket, as a
kubelet speaks to containerd's CRI plugin."""

from __future__ import annotations

from pathlib import Path

import grpc
from hypercontainer.shim.protogen import Protos, descriptor_set

CRI_PROTO = Path(__file__).resolve().parents[1] / "data" / "specs" / "cri"


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
                stub = self.channel.unary_unary(f"/{service}/{method}",
                                                request_serializer=type(request).SerializeToString,
                                                response_deserializer=answer.FromString)
                return stub(request, timeout=timeout)
        raise KeyError(method)

    def __getattr__(self, method: str):
        if not method[:1].isupper():
            raise AttributeError(method)
        return lambda request, timeout=300: self.call(method, request, timeout)

    def close(self) -> None:
        self.channel.close()

"""gRPC status codes (google.rpc.Code, from the shipped code.proto) and the error that
carries one back to a ttrpc caller."""

from __future__ import annotations

from enum import IntEnum

from .protogen import shim_protos

Code = IntEnum("Code", {value.name: value.number  # type: ignore[misc]
                        for value in shim_protos().enum("google.rpc.Code").values})


class RpcError(Exception):
    """A request answered with a non-OK status."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def not_found(what: str) -> RpcError:
    return RpcError(Code.NOT_FOUND, f"{what}: not found")

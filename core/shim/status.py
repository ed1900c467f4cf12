"""gRPC status codes (google.rpc.Code, from the shipped code.proto) and the error that
carries one back to a ttrpc caller."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from .protogen import shim_protos


def _codes() -> Any:
    """The enum, built from the descriptors at run time (so its members are unknown to a
    type checker: it is typed Any)."""
    return IntEnum(
        "Code", {value.name: value.number for value in shim_protos().enum("google.rpc.Code").values}
    )


Code = _codes()


class RpcError(Exception):
    """A request answered with a non-OK status."""

    def __init__(self, code: IntEnum, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def not_found(what: str) -> RpcError:
    return RpcError(Code.NOT_FOUND, f"{what}: not found")

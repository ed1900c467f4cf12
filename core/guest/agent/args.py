"""Typed access to the fields of a request, with one-line errors for bad ones."""

from __future__ import annotations

import binascii
import builtins
import re

from .errors import Failure

# Container and exec ids, volume names: safe as file names and crun ids.
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class Args:
    def __init__(self, data: builtins.dict, where: builtins.str) -> None:
        self._data = data
        self._where = where

    def _get(
        self, name: builtins.str, kinds: tuple, what: builtins.str, default=None, required=True
    ):
        if name not in self._data or self._data[name] is None:
            if required:
                raise Failure(f"{self._where}: field '{name}' is required")
            return default
        value = self._data[name]
        # bool is an int in Python; never accept one for the other.
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise Failure(f"{self._where}: field '{name}' must be {what}")
        # (Sizes are bounded by the frame size already.)
        if isinstance(value, str) and "\0" in value:
            raise Failure(f"{self._where}: field '{name}' is not a valid string")
        return value

    def str(self, name: builtins.str, default: builtins.str | None = None) -> builtins.str:
        return self._get(name, (str,), "a string", default, required=default is None)

    def opt_str(self, name: builtins.str) -> builtins.str | None:
        return self._get(name, (str,), "a string", required=False)

    def id(self, name: builtins.str) -> builtins.str:
        value = self.str(name)
        if not ID.fullmatch(value):
            raise Failure(f"{self._where}: '{name}' {value[:80]!r} is not a valid id")
        return value

    def opt_id(self, name: builtins.str) -> builtins.str | None:
        return self.id(name) if self._data.get(name) is not None else None

    def bool(self, name: builtins.str, default: builtins.bool = False) -> builtins.bool:
        return self._get(name, (bool,), "true or false", default, required=False)

    def int(
        self,
        name: builtins.str,
        default: builtins.int | None = None,
        low: builtins.int = 0,
        high: builtins.int = 2**31 - 1,
    ) -> builtins.int:
        value = self._get(name, (int,), "an integer", default, required=default is None)
        if not low <= value <= high:
            raise Failure(f"{self._where}: field '{name}' must be between {low} and {high}")
        return value

    def opt_int(self, name: builtins.str, high: builtins.int = 2**63 - 1) -> builtins.int | None:
        return self.int(name, high=high) if self._data.get(name) is not None else None

    def base64(self, name: builtins.str, limit: builtins.int) -> bytes:
        """Bytes sent as base64 (b"" when absent), at most `limit` of them."""
        try:
            data = binascii.a2b_base64(self.str(name, ""), strict_mode=True)
        except ValueError:
            raise self.fail(f"{name} is not base64") from None
        if len(data) > limit:
            raise self.fail(f"{name}: more than {limit} bytes in one request")
        return data

    def strings(
        self, name: builtins.str, required: builtins.bool = False
    ) -> builtins.list[builtins.str]:
        value = self._get(name, (list,), "a list of strings", [], required=required)
        if not all(isinstance(item, str) and "\0" not in item for item in value):
            raise Failure(f"{self._where}: field '{name}' must be a list of strings")
        return value

    def list(self, name: builtins.str) -> builtins.list:
        return self._get(name, (list,), "a list", [], required=False)

    def dict(self, name: builtins.str, required: builtins.bool = False) -> builtins.dict:
        return self._get(name, (dict,), "an object", {}, required=required)

    def sub(self, name: builtins.str, required: builtins.bool = False) -> Args | None:
        value = self._get(name, (dict,), "an object", None, required=required)
        return None if value is None else Args(value, f"{self._where}.{name}")

    def item(self, value, index: builtins.int, name: builtins.str) -> Args:
        if not isinstance(value, dict):
            raise Failure(f"{self._where}: {name}[{index}] must be an object")
        return Args(value, f"{self._where}.{name}[{index}]")

    def string_map(self, name: builtins.str) -> builtins.dict[builtins.str, builtins.str]:
        value = self.dict(name)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise Failure(f"{self._where}: field '{name}' must map strings to strings")
        return value

    def fail(self, message: builtins.str) -> Failure:
        return Failure(f"{self._where}: {message}")

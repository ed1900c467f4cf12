"""Cloud Hypervisor's OpenAPI spec as JSON Schema validators, for the stand-in.

OpenAPI 3.0 schemas are nearly JSON Schema draft 4: `nullable: true` becomes
a "null" alternative, `$ref`s point into #/components/schemas of one root
document, and integer `format`s (int16, uint8, ...) are checked as ranges.
The real server rejects fields it does not know (serde), which the spec does
not say: every object schema is closed here (additionalProperties: false).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SPEC = Path(__file__).resolve().parents[2] / "data" / "specs" / "cloud-hypervisor.openapi.yaml"
SCHEMA_PREFIX = "#/components/schemas/"

INTEGER_RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "uint8": (0, 2**8 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
}


def to_json_schema(node: Any) -> Any:
    """An OpenAPI 3.0 schema (sub)tree as JSON Schema draft 4."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: to_json_schema(value) for key, value in node.items()}
    if converted.pop("nullable", False):
        kind = converted.get("type")
        if isinstance(kind, str):
            converted["type"] = [kind, "null"]
        if "enum" in converted:
            converted["enum"] = [*converted["enum"], None]
        if "$ref" in converted:
            converted = {"anyOf": [{"$ref": converted.pop("$ref")}, {"type": "null"}]}
    if converted.get("type") == "object" and "properties" in converted:
        converted.setdefault("additionalProperties", False)
    for keyword in ("deprecated", "example", "description"):
        converted.pop(keyword, None)
    return converted


def _format_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker()
    for name, (low, high) in INTEGER_RANGES.items():

        def check(value: object, low: int = low, high: int = high) -> bool:
            return not isinstance(value, int) or low <= value <= high

        checker.checks(name)(check)
    return checker


@dataclass(frozen=True)
class Operation:
    method: str  # "GET" | "PUT"
    path: str  # "/vm.create"
    body_schema: str | None  # component name of the request body
    body_required: bool
    statuses: frozenset[int]


class Spec:
    def __init__(self, path: Path = SPEC) -> None:
        document = yaml.safe_load(path.read_text())
        self.schemas = {
            name: to_json_schema(schema)
            for name, schema in document["components"]["schemas"].items()
        }
        self.operations: dict[tuple[str, str], Operation] = {}
        for route, methods in document["paths"].items():
            for method, operation in methods.items():
                body = operation.get("requestBody")
                ref = body["content"]["application/json"]["schema"]["$ref"] if body else None
                self.operations[(method.upper(), route)] = Operation(
                    method.upper(),
                    route,
                    ref[len(SCHEMA_PREFIX) :] if ref else None,
                    bool(body and body.get("required")),
                    frozenset(int(code) for code in operation["responses"]),
                )
        self._checker = _format_checker()

    @property
    def paths(self) -> set[str]:
        return {path for _, path in self.operations}

    def validator(self, name: str) -> jsonschema.Draft4Validator:
        root = {"$ref": SCHEMA_PREFIX + name, "components": {"schemas": self.schemas}}
        return jsonschema.Draft4Validator(root, format_checker=self._checker)

    def errors(self, name: str, instance: Any) -> list[str]:
        """Why `instance` is not a valid `name`; empty if it is."""
        return [
            f"{'.'.join(str(p) for p in error.absolute_path) or '(body)'}: {error.message}"
            for error in self.validator(name).iter_errors(instance)
        ]

"""The API's OpenAPI document, generated from the route table and its pydantic models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, TypeAdapter

from .. import __version__
from .http import Router

ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}


def _schema(annotation: Any, defs: dict[str, Any]) -> dict[str, Any]:
    """The schema of `annotation`, every model in it moved to the components."""
    schema = TypeAdapter(annotation).json_schema(ref_template="#/components/schemas/{model}")
    defs.update(schema.pop("$defs", {}))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        defs[annotation.__name__] = schema
        return {"$ref": f"#/components/schemas/{annotation.__name__}"}
    return schema


def document(router: Router) -> dict[str, Any]:
    defs: dict[str, Any] = {"Error": ERROR}
    paths: dict[str, Any] = {}
    for route in router.routes:
        operation: dict[str, Any] = {
            "summary": route.summary,
            "operationId": route.handler.__name__.strip("_"),
            "responses": {
                "400": _error("Bad request: one line saying why"),
                "404": _error("No such pod, container or image"),
                "409": _error("Not possible in the current state"),
            },
        }
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"\{(\w+)\}", route.template)
        ]
        params += [
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": text,
                "schema": {"type": "string"},
            }
            for name, text in route.query.items()
        ]
        if params:
            operation["parameters"] = params
        if route.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _schema(route.body, defs)}},
            }
        operation["responses"].update(_answer(route, defs))
        paths.setdefault(route.template, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hyperd",
            "version": __version__,
            "description": "HTTP/JSON over the unix socket of hyperd.",
        },
        "paths": paths,
        "components": {"schemas": defs},
    }


def _error(text: str) -> dict[str, Any]:
    return {
        "description": text,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _answer(route, defs: dict[str, Any]) -> dict[str, Any]:
    if route.kind == "upgrade":
        return {"101": {"description": "Switching to the framed stdio stream protocol"}}
    if route.kind == "lines":
        return {
            "200": {
                "description": "One JSON object per line",
                "content": {"application/x-ndjson": {"schema": {"type": "object"}}},
            }
        }
    if route.kind == "raw":
        return {
            "200": {"description": "An OCI archive", "content": {"application/octet-stream": {}}}
        }
    schema = _schema(route.answer, defs) if route.answer is not None else {}
    return {"200": {"description": "Success", "content": {"application/json": {"schema": schema}}}}

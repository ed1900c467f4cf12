"""`--format` for list, images, inspect and events: `json`, or a Go-template-like line.

    --format json                  the objects hyperd answered, as JSON
    --format '{{.ID}}\\t{{.Name}}'  one line per object

A field is looked up in the object without regard to case or underscores, so
`{{.ExitCode}}` finds `exit_code` and `{{.PodID}}` finds `pod_id`; `.a.b`
goes into nested objects; `{{json .Spec}}` prints a value as JSON; `\\t` and
`\\n` in the template are a tab and a newline. That is all of Go's template
language this supports: enough for scripts, cheap to keep.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .client import CommandError

ALIASES = {"status": "state", "ip": "address", "vm": "vmname", "pod": "podid"}
FIELD = re.compile(r"\{\{\s*(json\s+)?\.([A-Za-z0-9_.]*)\s*\}\}")
HELP = "json, or a template such as '{{.ID}}' (fields as in --format json)"


def add_option(parser) -> None:
    parser.add_argument("--format", metavar="json|TEMPLATE", help=HELP)


def _key(name: str) -> str:
    return name.replace("_", "").lower()


def _field(value: Any, path: str, template: str) -> Any:
    for part in path.split(".") if path else []:
        if not isinstance(value, dict):
            raise CommandError(f"--format {template!r}: .{path} is not a field")
        keys = {_key(k): k for k in value}
        wanted = _key(part)
        key = keys.get(wanted) or keys.get(ALIASES.get(wanted, ""))
        if key is None:
            fields = ", ".join(f".{k}" for k in value)
            raise CommandError(f"--format {template!r}: no field .{part} (fields: {fields})")
        value = value[key]
    return value


def _text(value: Any, as_json: bool) -> str:
    if as_json or isinstance(value, dict | list):
        return json.dumps(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render(template: str, item: dict[str, Any]) -> str:
    """One object through the template."""
    line = template.replace("\\t", "\t").replace("\\n", "\n")
    return FIELD.sub(lambda m: _text(_field(item, m[2], template), bool(m[1])), line)


def output(fmt: str, items: list[dict[str, Any]]) -> None:
    """Print `items` as --format asks (fmt is not empty)."""
    if fmt == "json":
        print(json.dumps(items, indent=2))
        return
    if "{{" not in fmt:
        raise CommandError(f"--format {fmt!r}: give json or a template such as '{{{{.ID}}}}'")
    for item in items:
        print(render(fmt, item))

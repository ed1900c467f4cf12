"""Reading pod files: JSON or YAML text in, a validated `PodSpec` or one line out.

Keys match case-insensitively, as the original's Go decoder did (its own
examples write `containerport` and `readonly`); they are rewritten to the
canonical spelling before validation, only inside the pod file's own fields,
never inside free-form maps such as `labels`. A `null` value counts as absent.
Error messages name the place with the keys as the user spelled them:
`podfile.json: containers[0].Image: field required`.

hyperctl passes `base_dir` (the pod file's directory): `files[].uri` naming a
local file (`file:///etc/resolv.conf`, or a path relative to `base_dir`) is
then read here, with the user's permissions, and inlined as base64 content;
an http(s) URI is fetched by the `fetch` it passes (core/fetch.py). hyperd
never passes them, so a pod file cannot make the daemon read host files or
reach the network.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import types
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any, Union, get_args, get_origin
from urllib.parse import unquote, urlsplit

import yaml as pyyaml
from pydantic import ValidationError

from .errors import UserError
from .spec import PodSpec
from .specfields import MAX_FILE_BYTES, Loc, SpecError, SpecModel, render_loc, show

__all__ = ["load_pod_file", "load_pod_spec", "parse_pod_spec"]

Fetch = Callable[[str], bytes]  # an http(s) URI's bytes, or UserError
MAX_TEXT = 16 << 20
TOO_LARGE = f"the pod file is larger than {MAX_TEXT >> 20} MiB"
MAX_VALUES = 200_000  # also stops YAML alias bombs, which expand while walked
KUBERNETES_KEYS = {"apiversion", "kind"}


def load_pod_file(
    path: str | os.PathLike[str],
    yaml: bool | None = None,
    kubernetes: bool = False,
    fetch: Fetch | None = None,
) -> PodSpec:
    """Read a pod file as hyperctl does; YAML when `yaml` or a .yml/.yaml name; the
    Kubernetes pod form with `kubernetes`. `fetch` gets http(s) URIs' bytes."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_TEXT + 1)
    except OSError as e:
        raise UserError(f"{path}: {e.strerror}") from None
    if len(raw) > MAX_TEXT:
        raise UserError(f"{path}: {TOO_LARGE}")
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    if yaml is None:
        yaml = path.suffix.lower() in (".yml", ".yaml")
    return load_pod_spec(
        text, yaml=yaml, source=str(path), base_dir=path.parent, kubernetes=kubernetes, fetch=fetch
    )


def load_pod_spec(
    text: str,
    yaml: bool = False,
    source: str = "",
    base_dir: str | os.PathLike[str] | None = None,
    kubernetes: bool = False,
    fetch: Fetch | None = None,
) -> PodSpec:
    """Parse and validate pod file text; UserError (one line) if it is not a valid pod."""
    try:
        if len(text) > MAX_TEXT:
            raise UserError(TOO_LARGE)
        data = _parse_yaml(text) if yaml else _parse_json(text)
        if kubernetes:
            data = _from_kubernetes(data)
    except UserError as e:
        raise UserError(f"{source}: {e}" if source else str(e)) from None
    return parse_pod_spec(
        data, source=source, yaml=yaml and not kubernetes, base_dir=base_dir, fetch=fetch
    )


def _from_kubernetes(data: Any) -> Any:
    from .kubepod import convert

    try:
        return convert(data)
    except SpecError as e:
        where = render_loc(e.loc, {}) if e.loc else ""
        raise UserError(
            f"the Kubernetes pod form: {where + ': ' if where else ''}{e.reason}"
        ) from None


def parse_pod_spec(
    data: Any,
    source: str = "",
    *,
    yaml: bool = False,
    base_dir: str | os.PathLike[str] | None = None,
    fetch: Fetch | None = None,
) -> PodSpec:
    """Validate already-parsed pod data (e.g. a request body)."""
    spelling: dict[Loc, str] = {}
    try:
        canonical = _canonical_pod(data, yaml, spelling)
        if base_dir is not None:
            _inline_file_uris(canonical, Path(base_dir), fetch)
        return PodSpec.model_validate(canonical)
    except SpecError as e:
        message = f"{render_loc(e.loc, spelling)}: {e.reason}" if e.loc else e.reason
    except ValidationError as e:
        message = _describe(e, spelling)
    except UserError as e:
        message = str(e)
    raise UserError(f"{source}: {message}" if source else message)


# ---- text ------------------------------------------------------------------------


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(f"key {show(key)} appears twice in one object")
        result[key] = value
    return result


def _no_constant(name: str) -> None:
    raise _DuplicateKey(f"{name} is not a number JSON allows")


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise UserError(f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except _DuplicateKey as e:
        raise UserError(f"invalid JSON: {e}") from None
    except RecursionError:
        raise UserError("invalid JSON: nested too deeply") from None


class _StrictLoader(pyyaml.SafeLoader):
    """Safe YAML that refuses a key given twice in one mapping."""

    def construct_mapping(self, node: pyyaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable; the base class reports it
                continue
            if duplicate:
                raise pyyaml.constructor.ConstructorError(
                    None, None, f"key {show(key)} appears twice", key_node.start_mark
                )
        return super().construct_mapping(node, deep)


def _parse_yaml(text: str) -> Any:
    try:
        return pyyaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader
    except pyyaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise UserError(f"invalid YAML{where}: {_one_line(e.problem or e.context)}") from None
    except RecursionError:
        raise UserError("invalid YAML: nested too deeply") from None
    except (pyyaml.YAMLError, ValueError, TypeError, OverflowError) as e:
        raise UserError(f"invalid YAML: {_one_line(str(e))}") from None


def _one_line(text: str | None) -> str:
    return " ".join(str(text).split())


# ---- keys ------------------------------------------------------------------------


def _canonical_pod(data: Any, yaml: bool, spelling: dict[Loc, str]) -> Any:
    form = "YAML mapping" if yaml else "JSON object"
    if not isinstance(data, dict):
        raise UserError(f"a pod file is a {form}, not {_kind(data)}")
    _check_size(data)
    if any(isinstance(k, str) and k.lower() in KUBERNETES_KEYS for k in data):
        raise UserError(
            "this is the Kubernetes pod form (apiVersion, kind, spec): run it with -k FILE"
        )
    # The YAML form names the pod `name` where the JSON form says `id`.
    renames = {"name": "id"} if yaml else {}
    return _canonical(data, PodSpec, (), spelling, renames)


def _kind(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "text" if isinstance(value, str) else f"a {type(value).__name__}"


def _check_size(data: Any) -> None:
    count, stack = 0, [data]
    while stack:
        node = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise UserError(f"the pod file holds more than {MAX_VALUES} values")
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _canonical(
    data: Any,
    model: type[SpecModel],
    loc: Loc,
    spelling: dict[Loc, str],
    renames: Mapping[str, str] | None = None,
) -> Any:
    if not isinstance(data, dict):
        return data  # not an object: validation says so, at this place
    keys = {**_keys(model), **(renames or {})}
    unsupported = {k.lower(): reason for k, reason in model.unsupported.items()}
    given: dict[str, str] = {}
    result: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise SpecError(loc, f"key {show(key)} is not a string")
        canonical = keys.get(key.lower())
        if canonical is None:
            reason = unsupported.get(key.lower(), "unknown field")
            if not loc and key.lower() == "name":
                reason += " (a JSON pod file names the pod with id)"
            raise SpecError((*loc, key), reason)
        if canonical in given:
            raise SpecError(
                (*loc, canonical), f"given twice, as {show(given[canonical])} and {show(key)}"
            )
        given[canonical] = key
        spelling[(*loc, canonical)] = key
        if value is not None:  # null means absent, as in the original's decoder
            result[canonical] = _canonical_value(
                value, model, canonical, (*loc, canonical), spelling
            )
    return result


def _canonical_value(
    value: Any, model: type[SpecModel], key: str, loc: Loc, spelling: dict[Loc, str]
) -> Any:
    nested, many = _nested_models(model)[key]
    if nested is None or (many and not isinstance(value, list)):
        return value  # free-form, or of the wrong type: validation reports it
    if many:
        return [_canonical(item, nested, (*loc, i), spelling) for i, item in enumerate(value)]
    return _canonical(value, nested, loc, spelling)


@cache
def _keys(model: type[SpecModel]) -> dict[str, str]:
    """Lower-cased key -> the canonical key."""
    return {(f.alias or name).lower(): f.alias or name for name, f in model.model_fields.items()}


@cache
def _nested_models(model: type[SpecModel]) -> dict[str, tuple[type[SpecModel] | None, bool]]:
    """Canonical key -> (the model its value holds, whether it is a list of them)."""
    shapes: dict[str, tuple[type[SpecModel] | None, bool]] = {}
    for name, field in model.model_fields.items():
        annotation, many = field.annotation, False
        if get_origin(annotation) is list:
            annotation, many = get_args(annotation)[0], True
        if get_origin(annotation) in (Union, types.UnionType):
            annotation = next(a for a in get_args(annotation) if a is not type(None))
        is_model = isinstance(annotation, type) and issubclass(annotation, SpecModel)
        shapes[field.alias or name] = (annotation if is_model else None, many)
    return shapes


# ---- files -----------------------------------------------------------------------


def _inline_file_uris(data: dict[str, Any], base_dir: Path, fetch: Fetch | None) -> None:
    files = data.get("files")
    for i, item in enumerate(files if isinstance(files, list) else []):
        uri = item.get("uri") if isinstance(item, dict) else None
        if not uri or not isinstance(uri, str):
            continue
        loc = ("files", i, "uri")
        if item.get("content"):
            raise SpecError(loc, "give uri or content, not both")
        content = _content(uri, base_dir, loc, fetch)
        item["content"] = base64.b64encode(content).decode()
        item["encoding"] = "base64"
        del item["uri"]


def _content(uri: str, base_dir: Path, loc: Loc, fetch: Fetch | None) -> bytes:
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https") and fetch is not None:
        try:
            return fetch(uri)
        except UserError as e:
            raise SpecError(loc, str(e)) from None
    if parts.scheme == "file" and parts.netloc in ("", "localhost"):
        return _read_local(Path(unquote(parts.path)), loc)
    if parts.scheme or parts.netloc:
        scheme = parts.scheme or "remote"
        fetched = "http(s) and local file://" if fetch is not None else "local file://"
        reason = f"{scheme} URIs are not fetched; only {fetched} URIs are (or give content)"
        raise SpecError(loc, reason)
    return _read_local(base_dir / uri, loc)


def _read_local(path: Path, loc: Loc) -> bytes:
    name = repr(str(path))  # the user's own path, in full: it is theirs to fix
    try:
        # O_NONBLOCK: a FIFO must not hang us before we see it is no regular file.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, ValueError) as e:
        raise SpecError(loc, f"cannot read {name}: {getattr(e, 'strerror', e)}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SpecError(loc, f"{name} is not a regular file")
        content = os.read(fd, MAX_FILE_BYTES + 1)
        while len(content) <= MAX_FILE_BYTES and (more := os.read(fd, MAX_FILE_BYTES)):
            content += more
    finally:
        os.close(fd)
    if len(content) > MAX_FILE_BYTES:
        raise SpecError(loc, f"{name} is larger than {MAX_FILE_BYTES} bytes")
    return content


# ---- messages --------------------------------------------------------------------


def _describe(error: ValidationError, spelling: Mapping[Loc, str]) -> str:
    problems = error.errors(include_url=False)
    first = problems[0]
    loc = tuple(part for part in first["loc"] if part != "[key]")
    message = _message(first)
    text = f"{render_loc(loc, spelling)}: {message}" if loc else message
    more = len(problems) - 1
    if more:
        text += f" (and {more} more problem{'s' if more > 1 else ''})"
    return text


def _message(problem: Mapping[str, Any]) -> str:
    if problem["type"] == "missing":
        return "field required"
    if problem["type"] == "extra_forbidden":
        return "unknown field"
    text = _one_line(problem["msg"]).removeprefix("Value error, ")
    text = text[:1].lower() + text[1:]
    return f"key: {text}" if "[key]" in problem["loc"] else text

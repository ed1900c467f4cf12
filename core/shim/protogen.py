"""Protobuf message classes built from .proto files, compiled by grpcio-tools at first use.

containerd's .proto files are kept verbatim (proto/SOURCE.md); their gogoproto import
and options, which only steer Go code generation, are stripped before protoc sees them.
protoc (from grpcio-tools) compiles them into a FileDescriptorSet, cached by the hash
of its inputs; the installed protobuf runtime builds the message classes from that set.
A descriptor set is plain data, so nothing generated can disagree with the protobuf
runtime's version, which generated `_pb2.py` modules would have to match.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import HyperError

PROTO_ROOT = Path(__file__).parent / "proto"
GENERATOR_VERSION = "1"  # bump when the stripping or the compile step changes

_GOGO_IMPORT = re.compile(
    r'^[ \t]*import[ \t]+(?:weak[ \t]+)?"[^"]*gogo\.proto"[ \t]*;[ \t]*$', re.MULTILINE
)
_GOGO_OPTION = re.compile(
    r"^[ \t]*option[ \t]+\(gogoproto\.\w+\)[ \t]*=[^;]*;[ \t]*$", re.MULTILINE
)
_OPTION_LIST = re.compile(r"\[([^\[\]]*gogoproto\.[^\[\]]*)\]")
_LIST_ITEM = re.compile(r'(?:"(?:[^"\\]|\\.)*"|[^,"])+')


def strip_gogo(text: str) -> str:
    """`text` without gogoproto's import, file/message options and field options."""
    text = _GOGO_IMPORT.sub("", text)
    text = _GOGO_OPTION.sub("", text)

    def field_options(match: re.Match) -> str:
        kept = [
            item.strip()
            for item in _LIST_ITEM.findall(match.group(1))
            if not item.strip().startswith("(gogoproto.")
        ]
        return f"[{', '.join(kept)}]" if kept else ""

    return _OPTION_LIST.sub(field_options, text)


class ProtoError(HyperError):
    """The .proto files do not compile."""


def proto_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.proto"))


def descriptor_set(root: Path, files: Iterable[str], cache_dir: Path | None = None) -> bytes:
    """The serialized FileDescriptorSet of `files` (paths under `root`) and their imports."""
    files = sorted(files)
    texts = {name: strip_gogo((root / name).read_text()) for name in files}
    key = _cache_key(texts)
    cached = (cache_dir or _default_cache_dir()) / f"{key}.pb"
    try:
        return cached.read_bytes()
    except OSError:
        pass
    data = _compile(texts)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=cached.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(temporary, cached)  # concurrent first uses: the last rename wins, same bytes
    except OSError:
        pass  # an unwritable cache only costs a compile next time
    return data


def _cache_key(texts: dict[str, str]) -> str:
    from grpc_tools import __file__ as tools_file

    digest = hashlib.sha256(GENERATOR_VERSION.encode())
    digest.update(_tools_version(Path(tools_file)).encode())
    for name, text in texts.items():
        digest.update(f"\0{name}\0{text}".encode())
    return digest.hexdigest()[:32]


def _tools_version(tools_dir: Path) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("grpcio-tools")
    except PackageNotFoundError:
        return str(tools_dir.parent.stat().st_mtime_ns)


def _compile(texts: dict[str, str]) -> bytes:
    import grpc_tools
    from grpc_tools import protoc

    includes = Path(grpc_tools.__file__).parent / "_proto"  # the well-known types
    with tempfile.TemporaryDirectory(prefix="hc-proto-") as work:
        tree = Path(work) / "src"
        for name, text in texts.items():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            (tree / name).write_text(text)
        out = Path(work) / "set.pb"
        argv = [
            "protoc",
            f"-I{tree}",
            f"-I{includes}",
            "--include_imports",
            f"--descriptor_set_out={out}",
            *texts,
        ]
        # protoc prints its diagnostics to stderr; its exit code says whether it worked.
        if protoc.main(argv) != 0 or not out.exists():
            raise ProtoError(f"protoc could not compile {', '.join(texts)}")
        return out.read_bytes()


def _default_cache_dir() -> Path:
    from ..paths import default_cache_root

    return default_cache_root() / "protos"


class Protos:
    """Message classes and service descriptors of one compiled descriptor set."""

    def __init__(self, data: bytes) -> None:
        from google.protobuf import descriptor_pb2, descriptor_pool

        self.pool = descriptor_pool.DescriptorPool()
        for file in descriptor_pb2.FileDescriptorSet.FromString(data).file:
            self.pool.Add(file)
        self._classes: dict[str, Any] = {}

    def message(self, full_name: str) -> Any:
        """The message class (made at run time from its descriptor, so typed Any)."""
        if full_name not in self._classes:
            from google.protobuf import message_factory

            descriptor = self.pool.FindMessageTypeByName(full_name)
            self._classes[full_name] = message_factory.GetMessageClass(descriptor)
        return self._classes[full_name]

    def service(self, full_name: str):
        return self.pool.FindServiceByName(full_name)

    def enum(self, full_name: str):
        return self.pool.FindEnumTypeByName(full_name)


@cache
def shim_protos() -> Protos:
    """Everything the shim speaks: the Task service, events, ttrpc, runtime options."""
    return Protos(descriptor_set(PROTO_ROOT, proto_files(PROTO_ROOT)))

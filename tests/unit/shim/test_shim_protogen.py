"""Protobuf classes from the shipped .proto files: gogoproto stripped, compiled by
grpcio-tools, cached, and speaking the bytes containerd's Go code does."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypercontainer.shim import protogen
from hypercontainer.shim.protogen import Protos, descriptor_set, proto_files, strip_gogo

CRI_PROTO = Path(__file__).resolve().parents[2] / "data" / "specs" / "cri"


def test_gogoproto_imports_and_options_go_and_other_options_stay() -> None:
    text = """syntax = "proto3";
import weak "gogoproto/gogo.proto";
import "github.com/gogo/protobuf/gogoproto/gogo.proto";
import "google/protobuf/any.proto";
option (gogoproto.sizer_all) = true;
message M {
  option (gogoproto.goproto_stringer) = false;
  string id = 1 [(gogoproto.customname) = "ID, with a comma"];
  int64 t = 2 [(gogoproto.stdtime) = true, deprecated = true, (gogoproto.nullable) = false];
  repeated string s = 3;
}
"""
    stripped = strip_gogo(text)
    assert "gogo" not in stripped
    assert 'import "google/protobuf/any.proto";' in stripped
    assert "string id = 1 ;" in stripped
    assert "int64 t = 2 [deprecated = true];" in stripped


def test_every_shipped_proto_compiles_and_the_shim_messages_exist(tmp_path) -> None:
    data = descriptor_set(protogen.PROTO_ROOT, proto_files(protogen.PROTO_ROOT), tmp_path)
    protos = Protos(data)
    methods = set(protos.service("containerd.task.v2.Task").methods_by_name)
    assert {
        "Create",
        "Start",
        "State",
        "Kill",
        "Wait",
        "Delete",
        "Exec",
        "ResizePty",
        "CloseIO",
        "Pids",
        "Pause",
        "Resume",
        "Stats",
        "Update",
        "Connect",
        "Shutdown",
    } <= methods
    assert protos.service("containerd.services.events.ttrpc.v1.Events").methods_by_name["Forward"]
    for name in (
        "TaskCreate",
        "TaskStart",
        "TaskExit",
        "TaskDelete",
        "TaskExecAdded",
        "TaskExecStarted",
        "TaskPaused",
        "TaskResumed",
    ):
        protos.message(f"containerd.events.{name}")
    protos.message("runtimeoptions.v1.Options")


def test_the_encoding_is_protobuf_s_own() -> None:
    # DeleteResponse{pid: 7, exit_status: 137}, as Go's proto.Marshal writes it.
    delete = protogen.shim_protos().message("containerd.task.v2.DeleteResponse")
    message = delete(pid=7, exit_status=137)
    message.exited_at.seconds = 1
    assert message.SerializeToString() == b"\x08\x07\x10\x89\x01\x1a\x02\x08\x01"


def test_a_compiled_set_is_cached_by_its_inputs(tmp_path, monkeypatch) -> None:
    first = descriptor_set(CRI_PROTO, ["api.proto"], tmp_path)
    assert len(list(tmp_path.glob("*.pb"))) == 1

    def no_compile(texts):
        raise AssertionError("compiled again")

    monkeypatch.setattr(protogen, "_compile", no_compile)
    assert descriptor_set(CRI_PROTO, ["api.proto"], tmp_path) == first


def test_the_cri_api_compiles_once_stripped(tmp_path) -> None:
    protos = Protos(descriptor_set(CRI_PROTO, ["api.proto"], tmp_path))
    runtime = protos.service("runtime.v1.RuntimeService").methods_by_name
    assert {"RunPodSandbox", "CreateContainer", "ExecSync", "StopPodSandbox"} <= set(runtime)


def test_a_proto_that_does_not_compile_is_one_error(tmp_path) -> None:
    (tmp_path / "bad.proto").write_text('syntax = "proto3"; message { }')
    with pytest.raises(protogen.ProtoError, match="bad.proto"):
        descriptor_set(tmp_path, ["bad.proto"], tmp_path / "cache")

"""Request and answer bodies of the daemon's API (the OpenAPI document is built from them)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..model import Container, Pod

MAX_ARGS = 1024
EXEC_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreatePod(Body):
    spec: dict[str, Any] = Field(description="A pod file as a JSON object")
    start: bool = Field(False, description="Boot the pod once it is created")
    stdin_open: bool = Field(
        False, description="Keep the containers' stdin open for an attached client"
    )
    transient: bool = Field(
        False,
        description="Remove the pod if its first start fails (what `run` means); implied by start",
    )
    netns: str | None = Field(
        None,
        min_length=1,
        max_length=4096,
        description="Path of a network namespace someone else configured (e.g. CNI): the "
        "pod's VM joins it instead of the configured network; rm leaves it",
    )


class CreateContainer(Body):
    spec: dict[str, Any] = Field(description="A container as in a pod file's containers list")
    start: bool = False
    stdin_open: bool = False


class PortMappingBody(Body):
    protocol: str = Field("tcp", pattern="^(tcp|udp)$")
    host_ip: str = Field("", max_length=64)
    host_port: int = Field(ge=1, le=65535)
    container_port: int = Field(ge=1, le=65535)


class PortMappingsBody(Body):
    """Port mappings added (or removed) all together: if one fails, none is."""

    mappings: list[PortMappingBody] = Field(min_length=1, max_length=65535)


class ExecBody(Body):
    command: list[str] = Field(min_length=1, max_length=MAX_ARGS)
    tty: bool = False
    env: list[str] = Field(default_factory=list, max_length=MAX_ARGS)
    cwd: str | None = Field(
        None,
        max_length=4096,
        pattern="^/",
        description="Working directory (default: the container's)",
    )
    user: str | None = Field(
        None,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?$",
        description="user[:group], names or ids (default: the container's)",
    )
    exec_id: str | None = Field(
        None,
        pattern=EXEC_ID,
        description="The process's id (default: hyperd picks one); kill takes it as ?exec=",
    )


class PullBody(Body):
    reference: str = Field(min_length=1, max_length=1024)


class PushBody(Body):
    reference: str = Field(min_length=1, max_length=1024)
    destination: str | None = Field(default=None, min_length=1, max_length=1024)


class TagBody(Body):
    source: str = Field(min_length=1, max_length=1024)
    target: str = Field(min_length=1, max_length=1024)


class SaveBody(Body):
    references: list[str] = Field(min_length=1, max_length=256)


class LogoutBody(Body):
    registry: str = Field(min_length=1, max_length=255)


class LoginBody(Body):
    registry: str = Field(min_length=1, max_length=255)
    username: str = Field(min_length=1, max_length=255)
    password: str = Field(min_length=1, max_length=4096)


class PodView(Pod):
    address: str = ""
    containers: list[str] = Field(default_factory=list)


class ContainerView(Container):
    pass


class Message(BaseModel):
    message: str


class ExitCode(BaseModel):
    exit_code: int | None
    state: str

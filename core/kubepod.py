"""The Kubernetes pod form (`hyperctl run -k`), turned into a hyper pod file.

As the original's KPod.Convert (runv's hypervisor/pod): `metadata.name` names
the pod ("default" without one), `metadata.labels` label it; each container's
`command` is its entrypoint and `args` its command; `workingDir`, `env`,
`volumeMounts` and `ports` map field by field; `spec.restartPolicy` (Never,
Always, OnFailure) is the pod's; volumes are `hostDir`/`hostPath` (a host
directory) or `emptyDir`; the containers' `memory` (bytes) add up to the VM's.
Every container gets a terminal, as there.

Where the original silently dropped a field, this refuses it, naming it: a pod
must not run without what its file asked for. Fields that mean nothing for a
hyper pod (`apiVersion`, the old `spec.version` and `spec.id`, a port's `name`,
`dnsPolicy`, `metadata.namespace`) are accepted and ignored. A port without a
`hostPort` publishes nothing, as in Kubernetes.
"""

from __future__ import annotations

from typing import Any

from .specfields import SpecError, show

RESTART = {"never": "never", "always": "always", "onfailure": "onFailure"}
IGNORED = {
    (): {"apiversion"},
    ("metadata",): {"namespace", "annotations", "uid"},
    ("spec",): {"version", "id", "dnspolicy"},
    ("containers",): {"resources", "cpu", "imagepullpolicy", "terminationmessagepath"},
    ("ports",): {"name"},
    ("volumes",): set(),
    ("volumeMounts",): set(),
    ("env",): set(),
}
MIB = 1 << 20


def _fields(data: Any, where: tuple, known: set[str], scope: tuple) -> dict[str, Any]:
    """`data` (a JSON object) with lower-cased keys; unknown keys are refused."""
    if not isinstance(data, dict):
        raise SpecError(where, "expected an object")
    fields = {}
    for key, value in data.items():
        lower = str(key).lower()
        if lower in IGNORED[scope]:
            continue
        if lower not in known:
            raise SpecError((*where, key), "not supported by a hyper pod")
        fields[lower] = value
    return fields


def _list(value: Any, where: tuple) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpecError(where, "expected a list")
    return value


def convert(data: Any) -> dict[str, Any]:
    """The hyper pod file for a Kubernetes pod; SpecError naming the place otherwise."""
    top = _fields(data, (), {"kind", "metadata", "spec"}, ())
    if top.get("kind") != "Pod":
        raise SpecError(("kind",), f"{show(top.get('kind'))} is not Pod")
    meta = _fields(top.get("metadata") or {}, ("metadata",), {"name", "labels"}, ("metadata",))
    if "spec" not in top:
        raise SpecError(("spec",), "field required")
    spec = _fields(top["spec"], ("spec",), {"containers", "volumes", "restartpolicy"}, ("spec",))
    policy = str(spec.get("restartpolicy") or "never")
    if policy.lower() not in RESTART:
        raise SpecError(
            ("spec", "restartPolicy"), f"{show(policy)} is not Never, Always or OnFailure"
        )
    containers, memory = [], 0
    for i, item in enumerate(_list(spec.get("containers"), ("spec", "containers"))):
        container, bytes_wanted = _container(item, ("spec", "containers", i))
        containers.append(container)
        memory += bytes_wanted
    pod: dict[str, Any] = {
        "id": meta.get("name") or "default",
        "labels": meta.get("labels") or {},
        "containers": containers,
        "volumes": [
            _volume(v, ("spec", "volumes", i))
            for i, v in enumerate(_list(spec.get("volumes"), ("spec", "volumes")))
        ],
        "restartPolicy": RESTART[policy.lower()],
        "tty": True,
    }
    if memory:
        pod["resource"] = {"vcpu": 1, "memory": -(-memory // MIB)}
    return pod


def _container(data: Any, where: tuple) -> tuple[dict[str, Any], int]:
    known = {
        "name",
        "image",
        "command",
        "args",
        "workingdir",
        "volumemounts",
        "ports",
        "env",
        "memory",
    }
    fields = _fields(data, where, known, ("containers",))
    container: dict[str, Any] = {"name": fields.get("name"), "image": fields.get("image")}
    if fields.get("command") is not None:
        container["entrypoint"] = fields["command"]
    if fields.get("args") is not None:
        container["command"] = fields["args"]
    if fields.get("workingdir"):
        container["workdir"] = fields["workingdir"]
    container["envs"] = []
    for j, item in enumerate(_list(fields.get("env"), (*where, "env"))):
        env = _fields(item, (*where, "env", j), {"name", "value"}, ("env",))
        container["envs"].append({"env": env.get("name"), "value": env.get("value", "")})
    container["volumes"] = []
    for j, item in enumerate(_list(fields.get("volumemounts"), (*where, "volumeMounts"))):
        mount = _fields(
            item, (*where, "volumeMounts", j), {"name", "mountpath", "readonly"}, ("volumeMounts",)
        )
        container["volumes"].append(
            {
                "volume": mount.get("name"),
                "path": mount.get("mountpath"),
                "readOnly": mount.get("readonly", False),
            }
        )
    ports = []
    for j, item in enumerate(_list(fields.get("ports"), (*where, "ports"))):
        port = _fields(
            item, (*where, "ports", j), {"containerport", "hostport", "protocol"}, ("ports",)
        )
        if port.get("hostport"):  # without one, Kubernetes publishes nothing either
            ports.append(
                {
                    "containerPort": port.get("containerport"),
                    "hostPort": port["hostport"],
                    "protocol": str(port.get("protocol") or "tcp").lower(),
                }
            )
    container["ports"] = ports
    memory = fields.get("memory") or 0
    if not isinstance(memory, int) or isinstance(memory, bool) or memory < 0:
        raise SpecError((*where, "memory"), "expected a number of bytes")
    return container, memory


def _volume(data: Any, where: tuple) -> dict[str, Any]:
    fields = _fields(
        data, where, {"name", "source", "hostdir", "hostpath", "emptydir"}, ("volumes",)
    )
    source = fields.get("source") or fields  # v1beta1 nests the kind under "source"
    if source is not fields:
        source = _fields(
            source, (*where, "source"), {"hostdir", "hostpath", "emptydir"}, ("volumes",)
        )
    host = source.get("hostdir") or source.get("hostpath")
    if host is not None:
        path = host.get("path") if isinstance(host, dict) else None
        if not path:
            raise SpecError((*where, "hostPath", "path"), "field required")
        return {"name": fields.get("name"), "source": path, "format": "vfs"}
    if "emptydir" in source:
        return {"name": fields.get("name"), "source": "", "format": ""}
    raise SpecError(where, "a volume is hostPath (hostDir) or emptyDir here")

"""Each rule a pod file must obey, with the exact one-line refusal."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from hypercontainer.errors import UserError
from hypercontainer.spec import Container
from hypercontainer.specfields import MAX_FILE_BYTES, SpecError
from hypercontainer.specload import parse_pod_spec

Refusal = Callable[..., str]


def pod_with(container: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    """A pod of one container `app` (busybox), with container and top-level keys overridden."""
    return {"containers": [{"name": "app", "image": "busybox", **(container or {})}], **top}


REFUSED = [
    # hostname and names
    (pod_with(hostname="a" * 64), "hostname: string should have at most 63 characters"),
    (pod_with(hostname="Web"), "hostname: 'Web' is not a hostname (lower-case DNS labels)"),
    (pod_with(hostname="a_b"), "hostname: 'a_b' is not a hostname (lower-case DNS labels)"),
    (pod_with(hostname="a..b"), "hostname: 'a..b' is not a hostname (lower-case DNS labels)"),
    (pod_with(id="my pod"), "id: 'my pod' is not a valid name (letters, digits, _ . -)"),
    (pod_with(id="-x"), "id: '-x' is not a valid name (letters, digits, _ . -)"),
    (pod_with({"name": "x" * 64}), "containers[0].name: string should have at most 63 characters"),
    # image
    (pod_with({"image": ""}), "containers[0].image: string should have at least 1 character"),
    (
        pod_with({"image": "Busybox"}),
        "containers[0].image: 'Busybox' is not an image reference like busybox:latest",
    ),
    (
        pod_with({"image": "busybox:"}),
        "containers[0].image: 'busybox:' is not an image reference like busybox:latest",
    ),
    (
        pod_with({"image": "a b"}),
        "containers[0].image: 'a b' is not an image reference like busybox:latest",
    ),
    # resources
    (
        pod_with(resource={"memory": 63}),
        "resource.memory: input should be greater than or equal to 64",
    ),
    (
        pod_with(resource={"memory": 262145}),
        "resource.memory: input should be less than or equal to 262144",
    ),
    (pod_with(resource={"vcpu": 0}), "resource.vcpu: input should be greater than or equal to 1"),
    (pod_with(resource={"vcpu": 65}), "resource.vcpu: input should be less than or equal to 64"),
    (
        pod_with(resource={"vcpu": "two"}),
        "resource.vcpu: input should be a valid integer, unable to parse string as an integer",
    ),
    # restart policy, signal, user
    (
        pod_with({"restartPolicy": "sometimes"}),
        "containers[0].restartPolicy: 'sometimes' is not one of never, onFailure, always",
    ),
    (
        pod_with({"stopSignal": "SIGFOO"}),
        "containers[0].stopSignal: 'SIGFOO' is not a signal name or number",
    ),
    (
        pod_with({"user": {"name": "a b"}}),
        "containers[0].user.name: 'a b' is not a user or group name or id",
    ),
    # command, workdir, paths
    (
        pod_with({"command": ["a\x00b"]}),
        "containers[0].command[0]: 'a\\x00b' is not free of NUL characters",
    ),
    (pod_with({"workdir": "tmp"}), "containers[0].workdir: 'tmp' is not an absolute path"),
    (
        pod_with({"volumes": [{"volume": "v", "path": "/a/../etc"}]}, volumes=[{"name": "v"}]),
        "containers[0].volumes[0].path: '/a/../etc' must not contain '..'",
    ),
    (
        pod_with({"volumes": [{"volume": "v", "path": "/a\nb"}]}, volumes=[{"name": "v"}]),
        "containers[0].volumes[0].path: '/a\\nb' contains control characters",
    ),
    (
        pod_with(
            {"files": [{"filename": "f", "path": "/x/../../etc/passwd"}]}, files=[{"name": "f"}]
        ),
        "containers[0].files[0].path: '/x/../../etc/passwd' must not contain '..'",
    ),
    (
        pod_with({"files": [{"filename": "f", "path": "etc/passwd"}]}, files=[{"name": "f"}]),
        "containers[0].files[0].path: 'etc/passwd' is not an absolute path",
    ),
    # envs
    (
        pod_with({"envs": [{"env": "1A", "value": "x"}]}),
        "containers[0].envs[0].env: '1A' is not an environment variable name",
    ),
    (
        pod_with({"envs": [{"env": "A=B"}]}),
        "containers[0].envs[0].env: 'A=B' is not an environment variable name",
    ),
    (
        pod_with({"envs": [{"env": "A"}, {"env": "B"}, {"env": "A"}]}),
        "containers[0].envs[2].env: environment variable 'A' repeats envs[0]",
    ),
    # file permissions
    (
        pod_with(
            {"files": [{"filename": "f", "path": "/f", "perm": "0999"}]}, files=[{"name": "f"}]
        ),
        "containers[0].files[0].perm: '0999' is not an octal mode like 0644",
    ),
    (
        pod_with({"files": [{"filename": "f", "path": "/f", "perm": "rw"}]}, files=[{"name": "f"}]),
        "containers[0].files[0].perm: 'rw' is not an octal mode like 0644",
    ),
    # references between containers and the pod
    (
        pod_with({"volumes": [{"volume": "data", "path": "/data"}]}),
        "containers[0].volumes[0].volume: no pod volume is named 'data'",
    ),
    (
        pod_with({"files": [{"filename": "conf", "path": "/etc/conf"}]}),
        "containers[0].files[0].filename: no pod file is named 'conf'",
    ),
    (
        pod_with(
            {"volumes": [{"volume": "v", "path": "/a"}, {"volume": "v", "path": "/b"}]},
            volumes=[{"name": "v"}],
        ),
        "containers[0].volumes[1].volume: volume 'v' repeats volumes[0]",
    ),
    (
        pod_with(
            {"volumes": [{"volume": "v", "path": "/a"}, {"volume": "w", "path": "/a"}]},
            volumes=[{"name": "v"}, {"name": "w"}],
        ),
        "containers[0].volumes[1].path: mount path '/a' repeats volumes[0]",
    ),
    # duplicates in the pod
    (
        {"containers": [{"name": "a", "image": "busybox"}, {"name": "a", "image": "busybox"}]},
        "containers[1].name: container name 'a' repeats containers[0]",
    ),
    (
        pod_with(volumes=[{"name": "v"}, {"name": "v"}]),
        "volumes[1].name: volume 'v' repeats volumes[0]",
    ),
    (pod_with(files=[{"name": "f"}, {"name": "f"}]), "files[1].name: file 'f' repeats files[0]"),
    # volumes
    (
        pod_with(volumes=[{"name": "v", "source": "data"}]),
        "volumes[0]: 'data' is not an absolute path",
    ),
    (
        pod_with(volumes=[{"name": "v", "source": "/srv/../etc", "format": "vfs"}]),
        "volumes[0]: '/srv/../etc' must not contain '..'",
    ),
    (
        pod_with(volumes=[{"name": "v", "format": "qcow2"}]),
        "volumes[0]: a qcow2 volume needs a source image",
    ),
    (
        pod_with(volumes=[{"name": "v", "format": "nas", "source": "/export"}]),
        "volumes[0]: source '/export' is not an NFS export host:/path",
    ),
    (
        pod_with(volumes=[{"name": "v", "format": "rbd", "source": "pool/img"}]),
        "volumes[0]: rbd volumes are not supported",
    ),
    (
        pod_with(volumes=[{"name": "v", "format": "iso"}]),
        "volumes[0].format: 'iso' is not one of , vfs, raw, qcow2, vdi, nas, rbd",
    ),
    # files
    (
        pod_with(files=[{"name": "f", "encoding": "hex"}]),
        "files[0].encoding: 'hex' is not one of raw, base64",
    ),
    (
        pod_with(files=[{"name": "f", "content": "x" * (MAX_FILE_BYTES + 1)}]),
        f"files[0]: content is larger than {MAX_FILE_BYTES} bytes",
    ),
    (
        pod_with(files=[{"name": "f", "uri": "file:///etc/shadow"}]),
        "files[0].uri: hyperd reads no URIs; hyperctl inlines file:// and http(s) URIs as content",
    ),
    # port mappings
    (
        pod_with(portmappings=[{"containerPort": "0", "hostPort": "80"}]),
        "portmappings[0].containerPort: '0': ports are 1-65535",
    ),
    (
        pod_with(portmappings=[{"containerPort": 80, "hostPort": 65536}]),
        "portmappings[0].hostPort: '65536': ports are 1-65535",
    ),
    (
        pod_with(portmappings=[{"containerPort": "22-2", "hostPort": "80-100"}]),
        "portmappings[0].containerPort: '22-2': the range is reversed",
    ),
    (
        pod_with(portmappings=[{"containerPort": "80--88", "hostPort": "80"}]),
        "portmappings[0].containerPort: '80--88' is not a port or a port range like 3000-3010",
    ),
    (
        pod_with(portmappings=[{"containerPort": "80", "hostPort": "8000-8008"}]),
        "portmappings[0]: host ports 8000-8008 and container ports 80 differ in length",
    ),
    (
        pod_with(portmappings=[{"containerPort": "80", "hostPort": "80", "protocol": "sctp"}]),
        "portmappings[0].protocol: 'sctp' is not one of tcp, udp",
    ),
    (
        pod_with(portmappings=[{"containerPort": "80", "hostPort": "80", "hostIP": "localhost"}]),
        "portmappings[0].hostIP: 'localhost' is not an IP address",
    ),
    (
        pod_with(portmappings=[{"containerPort": "80"}]),
        "portmappings[0].hostPort: field required",
    ),
    (
        pod_with(
            portmappings=[
                {"containerPort": "8000-8010", "hostPort": "8000-8010"},
                {"containerPort": "22", "hostPort": "8005"},
            ]
        ),
        "portmappings[1].hostPort: host port 8005/tcp is already mapped by portmappings[0]",
    ),
    (
        pod_with(
            {"ports": [{"containerPort": 80, "hostPort": 8080}]},
            portmappings=[{"containerPort": "80", "hostPort": "8080"}],
        ),
        "containers[0].ports[0].hostPort: host port 8080/tcp is already mapped by portmappings[0]",
    ),
    # DNS: nothing may reach resolv.conf but well-formed values
    (pod_with(dns=["8.8.8.8", "dns.google"]), "dns[1]: 'dns.google' is not an IP address"),
    (
        pod_with(dnsSearch=["example.com\nnameserver 6.6.6.6"]),
        "dnsSearch[0]: 'example.com\\nnameserver 6.6.6.6' is not a domain name",
    ),
    (
        pod_with(dnsOptions=["ndots:2\nnameserver 6.6.6.6"]),
        "dnsOptions[0]: 'ndots:2\\nnameserver 6.6.6.6' is not a resolver option",
    ),
    # interfaces, services, log
    (
        pod_with(
            interfaces=[{"ip": "10.0.0.2/24"}, {"gateway": "10.0.0.1"}, {"gateway": "10.0.0.9"}]
        ),
        "interfaces[2].gateway: interfaces[1] already sets the gateway",
    ),
    (
        pod_with(interfaces=[{"ip": "10.0.0.300/24"}]),
        "interfaces[0].ip: '10.0.0.300/24' is not an IP address with prefix length",
    ),
    (
        pod_with(interfaces=[{"mac": "52:54:00:zz:00:01"}]),
        "interfaces[0].mac: '52:54:00:zz:00:01' is not a MAC address",
    ),
    (
        pod_with(services=[{"serviceIP": "10.254.0.1", "servicePort": 80}] * 2),
        "services[1]: repeats services[0]",
    ),
    (
        pod_with(
            services=[
                {
                    "serviceIP": "10.254.0.1",
                    "servicePort": 80,
                    "hosts": [{"hostIP": "x", "hostPort": 1}],
                }
            ]
        ),
        "services[0].hosts[0].hostIP: 'x' is not an IP address",
    ),
    (pod_with(log={"type": "syslog"}), "log.type: 'syslog' is not one of json-file, none"),
    (
        pod_with(log={"config": {"path": "/etc/passwd"}}),
        "log: log option 'path' is not one of max-size, max-file",
    ),
    (pod_with(log={"config": {"max-size": "big"}}), "log: 'big' is not a size like 10m"),
    # ulimits and sysctls
    (
        pod_with({"ulimits": [{"name": "nofile", "soft": 10, "hard": 5}]}),
        "containers[0].ulimits[0]: soft limit 10 exceeds hard limit 5",
    ),
    (
        pod_with({"ulimits": [{"name": "files", "soft": 1, "hard": 1}]}),
        "containers[0].ulimits[0].name: 'files' is not one of as, core, cpu, data, fsize, locks,"
        " memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack",
    ),
    (
        pod_with({"sysctl": {"../../proc/x": "1"}}),
        "containers[0].sysctl['../../proc/x']: key: '../../proc/x' is not a sysctl name",
    ),
    # sizes: hostile pod files fail cleanly
    (
        {"containers": [{"image": "busybox"}] * 65},
        "containers: list should have at most 64 items after validation, not 65",
    ),
    (pod_with(labels={"a": "x" * 4097}), "labels.a: string should have at most 4096 characters"),
    (
        pod_with({"command": ["x" * 65537]}),
        "containers[0].command[0]: string should have at most 65536 characters",
    ),
    (
        pod_with(dns=["1.1.1.1"] * 9),
        "dns: list should have at most 8 items after validation, not 9",
    ),
    # types
    (pod_with(containers="busybox"), "containers: input should be a valid list"),
    (
        {"containers": ["busybox"]},
        "containers[0]: input should be a valid dictionary or instance of Container",
    ),
    (pod_with({"command": "/bin/sh"}), "containers[0].command: input should be a valid list"),
    (pod_with(containers={"id": "x"}), "containers: input should be a valid list"),
]


@pytest.mark.parametrize(("data", "message"), REFUSED, ids=[m.split(":")[0] for _, m in REFUSED])
def test_refused(refusal: Refusal, data: dict[str, Any], message: str) -> None:
    assert refusal(data) == message


def test_many_problems_are_counted_on_one_line(refusal: Refusal) -> None:
    data = {"containers": [{}, {}], "resource": {"vcpu": 0}}
    assert refusal(data) == "containers[0].image: field required (and 2 more problems)"


ACCEPTED_IMAGES = [
    "busybox",
    "ubuntu:latest",
    "library/busybox:1.36",
    "127.0.0.1:5000/team/app:v1.2-rc_3",
    "localhost:5000/app",
    "registry.example.com/a/b/c",
    "busybox@sha256:" + "a" * 64,
    "my_app__x-y.z:tag",
]


@pytest.mark.parametrize("image", ACCEPTED_IMAGES)
def test_plausible_images(image: str) -> None:
    assert parse_pod_spec(pod_with({"image": image})).containers[0].image == image


def test_defaults() -> None:
    spec = parse_pod_spec(pod_with(files=[{"name": "f"}]))
    assert (spec.resource.vcpu, spec.resource.memory) == (1, 128)
    container = spec.containers[0]
    assert container.restart_policy == "never" and not container.tty and not container.read_only
    assert container.workdir is None and container.stop_signal is None
    assert spec.log.type == "json-file" and spec.files[0].encoding == "raw"
    assert spec.id is None and spec.hostname is None


def test_accepted_values_are_normalised() -> None:
    spec = parse_pod_spec(
        pod_with(
            {
                "restartPolicy": "OnFailure",
                "stopSignal": "kill",
                "files": [{"filename": "f", "path": "/etc/"}],
                "ulimits": [{"name": "RLIMIT_NOFILE", "soft": 1, "hard": 2}],
            },
            files=[{"name": "f", "encoding": "BASE64", "content": "aGk=\n"}],
            portmappings=[{"containerPort": "22-22", "hostPort": 2222, "protocol": "TCP"}],
            dns=["2001:DB8::1"],
            hostname="web.local",
        )
    )
    container = spec.containers[0]
    assert container.restart_policy == "onFailure" and container.stop_signal == "SIGKILL"
    assert container.ulimits[0].name == "nofile"
    assert container.files[0].perm == "0755" and container.files[0].destination == "/etc/f"
    assert spec.files[0].data == b"hi"
    mapping = spec.portmappings[0]
    assert (mapping.container_port, mapping.host_port, mapping.protocol) == ("22", "2222", "tcp")
    assert spec.dns == ["2001:db8::1"] and spec.hostname == "web.local"


def test_numbers_from_yaml_become_strings() -> None:
    spec = parse_pod_spec(
        pod_with({"envs": [{"env": "PORT", "value": 8080}], "user": {"name": 1000, "group": 13}})
    )
    assert spec.containers[0].envs[0].value == "8080"
    assert spec.containers[0].user is not None and spec.containers[0].user.group == "13"


def test_a_port_mapping_may_name_its_host_address() -> None:
    spec = parse_pod_spec(
        pod_with(portmappings=[{"containerPort": "80", "hostPort": "8080", "hostIP": "0.0.0.0"}])
    )
    assert spec.portmappings[0].host_ip == "0.0.0.0"


def test_same_host_port_on_both_protocols() -> None:
    spec = parse_pod_spec(
        pod_with(
            portmappings=[
                {"containerPort": "53", "hostPort": "5353", "protocol": "udp"},
                {"containerPort": "53", "hostPort": "5353", "protocol": "tcp"},
            ]
        )
    )
    assert [m.protocol for m in spec.portmappings] == ["udp", "tcp"]


def test_volume_formats() -> None:
    spec = parse_pod_spec(
        pod_with(
            volumes=[
                {"name": "empty"},
                {"name": "host", "source": "/srv/data"},
                {
                    "name": "disk",
                    "source": "/var/lib/disk.qcow2",
                    "format": "qcow2",
                    "fstype": "ext4",
                },
                {
                    "name": "nfs",
                    "source": "nfs.example.com:/export",
                    "format": "nas",
                    "readOnly": True,
                },
            ]
        )
    )
    empty, host, disk, nfs = spec.volumes
    assert empty.is_empty and (empty.format, empty.source) == ("", "")
    assert host.format == "vfs" and not host.is_empty
    assert (disk.format, disk.fstype) == ("qcow2", "ext4")
    assert nfs.read_only


def test_pod_level_tty_and_restart_policy_are_container_defaults() -> None:
    spec = parse_pod_spec(
        {
            "tty": True,
            "restartPolicy": "always",
            "containers": [
                {"image": "busybox"},
                {"image": "busybox", "tty": False, "restartPolicy": "never"},
            ],
        }
    )
    assert [(c.tty, c.restart_policy) for c in spec.containers] == [
        (True, "always"),
        (False, "never"),
    ]


def test_container_ports_join_the_pod_port_mappings() -> None:
    spec = parse_pod_spec(
        pod_with(
            {"ports": [{"containerPort": 80, "hostPort": 8080, "protocol": "udp"}]},
            portmappings=[{"containerPort": "22", "hostPort": "2222"}],
        )
    )
    assert [(m.container_port, m.host_port, m.protocol) for m in spec.portmappings] == [
        ("22", "2222", "tcp"),
        ("80", "8080", "udp"),
    ]
    assert spec.containers[0].ports == []


def test_total_file_content_is_bounded(refusal: Refusal) -> None:
    chunk = base64.b64encode(b"x" * MAX_FILE_BYTES).decode()
    files = [{"name": f"f{i}", "encoding": "base64", "content": chunk} for i in range(17)]
    assert refusal(pod_with(files=files)) == "files: contents exceed 16777216 bytes in total"


def test_with_container_checks_against_the_pod() -> None:
    spec = parse_pod_spec(pod_with(volumes=[{"name": "v"}], tty=True))
    bigger = spec.with_container(
        Container(name="side", image="alpine", volumes=[{"volume": "v", "path": "/v"}])
    )
    assert [c.name for c in bigger.containers] == ["app", "side"]
    assert bigger.containers[1].tty  # the pod's default applies to the newcomer
    assert [c.name for c in spec.containers] == ["app"]  # the original is unchanged
    with pytest.raises(SpecError) as caught:
        spec.with_container(Container(name="app", image="alpine"))
    assert str(caught.value) == "containers[1].name: container name 'app' repeats containers[0]"
    with pytest.raises(UserError) as caught:
        spec.with_container(Container(image="alpine", volumes=[{"volume": "w", "path": "/w"}]))
    assert str(caught.value) == "containers[1].volumes[0].volume: no pod volume is named 'w'"

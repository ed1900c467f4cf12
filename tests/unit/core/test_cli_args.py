"""hyperctl's argument handling that needs no daemon: specs from flags, tables, errors."""

import re
import subprocess
import sys

import pytest
from hypercontainer.cli import pods
from hypercontainer.cli.client import CommandError
from hypercontainer.cli.main import build_parser
from hypercontainer.cli.tables import table


def parse(*argv):
    return build_parser().parse_args(list(argv))


def test_run_flags_become_a_pod_spec(tmp_path):
    args = parse(
        "run",
        "--name",
        "web",
        "--cpu",
        "2",
        "--memory",
        "256",
        "--env",
        "A=1",
        "--publish",
        "8080:80",
        "--publish",
        "3000-3001:4000-4001/udp",
        "-v",
        f"{tmp_path}:/data:ro",
        "-t",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "echo hi",
    )
    spec = pods.pod_from_args(args)
    assert spec["id"] == "web" and spec["resource"] == {"vcpu": 2, "memory": 256}
    (container,) = spec["containers"]
    assert container["command"] == ["sh", "-c", "echo hi"]
    assert container["envs"] == [{"env": "A", "value": "1"}] and container["tty"]
    assert spec["portmappings"][1] == {
        "hostPort": "3000-3001",
        "containerPort": "4000-4001",
        "protocol": "udp",
    }
    assert spec["volumes"][0]["source"] == str(tmp_path)
    assert container["volumes"] == [{"volume": "volume0", "path": "/data", "readOnly": True}]


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--env", "NOVALUE", "expected KEY=VALUE"),
        ("--publish", "80", "expected \\[HOSTIP:\\]HOST:CONTAINER"),
        ("--publish", ":80:80", "expected \\[HOSTIP:\\]HOST:CONTAINER"),
        ("-v", "/only", "expected HOSTDIR:PATH"),
    ],
)
def test_bad_flags_are_one_line_errors(flag, value, message):
    with pytest.raises(CommandError, match=message):
        pods.pod_from_args(parse("run", flag, value, "busybox"))


def test_publish_takes_a_host_address():
    spec = pods.pod_from_args(parse("run", "--publish", "0.0.0.0:8080:80/udp", "busybox"))
    assert spec["portmappings"] == [
        {"hostPort": "8080", "containerPort": "80", "protocol": "udp", "hostIp": "0.0.0.0"}
    ]


def test_port_mapping_text():
    assert pods.parse_mapping("127.0.0.1:8080:80/udp") == [
        {"protocol": "udp", "host_ip": "127.0.0.1", "host_port": 8080, "container_port": 80}
    ]
    assert [
        (m["host_port"], m["container_port"]) for m in pods.parse_mapping("18090-18091:80-81")
    ] == [(18090, 80), (18091, 81)]
    with pytest.raises(CommandError):
        pods.parse_mapping("a:b")
    with pytest.raises(CommandError, match="differ in length"):
        pods.parse_mapping("18090-18092:80-81")
    with pytest.raises(CommandError, match="the range is reversed"):
        pods.parse_mapping("18091-18090:80-81")


def test_tables_are_at_least_twenty_wide():
    text = table(
        ("POD ID", "POD Name", "VM name", "Status"),
        [("nginx-8530075287", "nginx-8530075287", "vm-pqEnBvQVdS", "running")],
    )
    header, row = text.splitlines()
    assert header.startswith("POD ID              POD Name            VM name")
    assert row == "nginx-8530075287    nginx-8530075287    vm-pqEnBvQVdS       running"


def test_validate_reports_one_line_and_exit_1(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"containers": [{"imagee": "busybox"}]}')
    result = subprocess.run(
        [sys.executable, "-m", "hypercontainer.cli.main", "validate", str(bad)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"hyperctl ERROR: {bad}: containers[0].imagee: unknown field"
    ]


def test_help_does_not_import_the_daemon():
    code = (
        "import sys, hypercontainer.cli.main as m\n"
        "try:\n    m.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [n for n in sys.modules if n.split('.')[0] in "
        "('pydantic', 'stevedore', 'pluggy', 'structlog', 'requests')"
        " or n.startswith('hypercontainer.runtime')]\n"
        "print(heavy, file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stderr.strip() == "[]"


class _Lookups:
    """A client whose image lookups all end with one answer."""

    def __init__(self, error: CommandError) -> None:
        self.error = error

    def request(self, method, path, body=None, query=None):
        raise self.error


@pytest.mark.parametrize(
    ("answer", "pulled"),
    [
        (CommandError("image 'busybox' not found locally", 404), True),
        (CommandError("no space left on the image store (/s/images)", 507), False),
        (CommandError("internal error: disk I/O error", 500), False),
    ],
)
def test_run_pulls_an_image_only_if_it_is_missing(monkeypatch, answer, pulled):
    from hypercontainer.cli import images

    pulls = []
    monkeypatch.setattr(images, "pull", lambda client, image, summary: pulls.append(image))
    spec = {"containers": [{"image": "busybox"}]}
    if pulled:
        pods.ensure_images(_Lookups(answer), spec)
    else:  # hyperd could not look: said, rather than a pull from the registry
        with pytest.raises(CommandError, match=re.escape(str(answer))):
            pods.ensure_images(_Lookups(answer), spec)
    assert pulls == (["busybox"] if pulled else [])


def test_logs_tail_is_a_number_of_lines_or_all(capsys):
    assert parse("logs", "--tail", "2", "c").tail == 2
    assert parse("logs", "--tail", "all", "c").tail is None
    assert parse("logs", "c").tail is None
    for wrong in ("-3", "two", "1.5", "²"):
        with pytest.raises(SystemExit):
            parse("logs", "--tail", wrong, "c")
        assert f"a number of lines (0 or more) or all, not {wrong!r}" in capsys.readouterr().err

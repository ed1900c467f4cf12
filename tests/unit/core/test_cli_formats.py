"""--format json and templates, and the times --since takes."""

import json
from datetime import UTC, datetime

import pytest
from hypercontainer.cli.client import CommandError
from hypercontainer.cli.formats import output, render
from hypercontainer.cli.moments import absolute

POD = {
    "id": "web",
    "vm_name": "vm-abc",
    "state": "running",
    "address": "10.0.2.15",
    "exit_code": None,
    "spec": {"labels": {"tier": "front"}, "tty": True},
}


@pytest.mark.parametrize(
    "template, line",
    [
        ("{{.ID}}", "web"),
        ("{{ .Id }}\\t{{.VMName}}", "web\tvm-abc"),  # any case, no underscores, \t
        ("{{.Status}} {{.IP}}", "running 10.0.2.15"),  # Docker's names for state and address
        ("{{.Spec.Labels.tier}}", "front"),
        ("{{json .Spec.Labels}}", '{"tier": "front"}'),
        ("[{{.ExitCode}}] {{.Spec.TTY}}", "[] true"),
    ],
)
def test_templates(template, line):
    assert render(template, POD) == line


def test_an_unknown_field_is_a_one_line_error():
    with pytest.raises(CommandError, match=r"no field \.Nope \(fields: \.id, \.vm_name"):
        render("{{.Nope}}", POD)


def test_json_is_the_objects(capsys):
    output("json", [POD])
    assert json.loads(capsys.readouterr().out) == [POD]
    with pytest.raises(CommandError, match="give json or a template"):
        output("yaml", [POD])


NOW = datetime(2026, 1, 2, 15, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    "text, moment",
    [
        ("10m", "2026-01-02T14:54:05.000000+00:00"),
        ("1.5h", "2026-01-02T13:34:05.000000+00:00"),
        ("2026-01-02T15:00:00Z", "2026-01-02T15:00:00.000000+00:00"),
        ("2026-01-02T17:00:00+02:00", "2026-01-02T15:00:00.000000+00:00"),
        ("2026-01-02 15:00", "2026-01-02T15:00:00.000000+00:00"),  # UTC unless it says
        ("1767366245", "2026-01-02T15:04:05.000000+00:00"),
    ],
)
def test_since_times(text, moment):
    assert absolute(text, "--since", NOW) == moment


@pytest.mark.parametrize("text", ["yesterday", "10 minutes", "1e400", "-5m"])
def test_bad_since_times(text):
    with pytest.raises(CommandError, match="--since"):
        absolute(text, "--since", NOW)

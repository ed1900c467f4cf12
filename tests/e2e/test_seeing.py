"""Seeing what is there: inspect, --format, logs --timestamps --since, events, exit codes.

One pod (one VM) whose container prints on both streams, then exits 3 when told.
"""

import json
import re
import subprocess
from datetime import UTC, datetime

import pytest

from tests.support.daemon import HYPERCTL, rows, wait_for

pytestmark = pytest.mark.vm

SCRIPT = "trap 'exit 3' USR1; echo first; sleep 2; echo second >&2; while :; do sleep 1; done"
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"


def test_inspect_formats_logs_events_and_exit_codes(hyperd, tmp_path):
    began = datetime.now(UTC).isoformat()  # events replays from here, however late it starts
    events = subprocess.Popen(
        [*HYPERCTL, "events", "--since", began],
        env=hyperd.env,
        text=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
    )
    try:
        hyperd.hyperctl(
            "run",
            "-d",
            "--name",
            "seen",
            "--label",
            "tier=front",
            "-v",
            f"{tmp_path}:/data",
            "busybox",
            "sh",
            "-c",
            SCRIPT,
            check=True,
        )

        # inspect: a pod (the name is both a pod's and its container's) and a container.
        (pod,) = json.loads(hyperd.hyperctl("inspect", "seen", check=True).stdout)
        assert (pod["kind"], pod["state"], pod["labels"]) == ("pod", "running", {})
        assert pod["address"] == "10.0.2.15" and pod["vm_pid"] > 0
        assert pod["volumes"][0]["source"] == str(tmp_path)
        (container_summary,) = pod["containers"]
        (container,) = json.loads(
            hyperd.hyperctl("inspect", "--type", "container", "seen", check=True).stdout
        )
        assert container["id"] == container_summary["id"] and container["pod_id"] == "seen"
        assert container["labels"] == {"tier": "front"} and container["exit_code"] is None
        assert container["mounts"] == [
            {
                "volume": "volume0",
                "source": str(tmp_path),
                "destination": "/data",
                "read_only": False,
            }
        ]
        assert container["started"] and container["address"] == "10.0.2.15"
        missing = hyperd.hyperctl("inspect", "nothing-here")
        assert (missing.returncode, missing.stderr) == (
            1,
            "hyperctl ERROR: no pod or container nothing-here\n",
        )

        # --format: JSON and templates, for list, images and inspect.
        listed = json.loads(hyperd.hyperctl("list", "--format", "json", check=True).stdout)
        assert [p["id"] for p in listed] == ["seen"]
        line = hyperd.hyperctl(
            "list", "container", "--format", "{{.Name}} {{.PodID}} {{.State}}", check=True
        ).stdout
        assert line == "seen seen running\n"
        images = hyperd.hyperctl(
            "images", "--format", "{{.Repository}}:{{.Tag}}", check=True
        ).stdout
        assert images == "busybox:latest\n"
        assert (
            hyperd.hyperctl("inspect", "--format", "{{.ID}} {{.Kind}}", "seen", check=True).stdout
            == "seen pod\n"
        )
        bad = hyperd.hyperctl("list", "--format", "{{.Colour}}")
        assert bad.returncode == 1 and bad.stderr.startswith("hyperctl ERROR: --format")

        # logs with timestamps, and from a time on.
        wait_for(
            lambda: "second" in hyperd.hyperctl("logs", "seen").stderr, 60, what="the second line"
        )
        stamped = hyperd.hyperctl("logs", "--timestamps", "seen", check=True)
        assert re.fullmatch(f"({STAMP}) first\n", stamped.stdout), stamped.stdout
        second = re.fullmatch(f"({STAMP}) second\n", stamped.stderr)
        assert second, stamped.stderr
        later = hyperd.hyperctl("logs", "--since", second[1], "seen", check=True)
        assert (later.stdout, later.stderr) == ("", "second\n")
        recent = hyperd.hyperctl("logs", "--since", "1h", "seen", check=True)
        assert (recent.stdout, recent.stderr) == ("first\n", "second\n")
        bad = hyperd.hyperctl("logs", "--since", "last tuesday", "seen")
        assert bad.returncode == 1 and "--since 'last tuesday'" in bad.stderr

        # The container exits 3 by itself: the pod ends, the exit code stays.
        hyperd.hyperctl("exec", "seen", "kill", "-USR1", "1", check=True)
        wait_for(
            lambda: rows(hyperd.hyperctl("list").stdout)[0][3] == "failed",
            60,
            what="the pod to end with its container",
        )
        (row,) = rows(hyperd.hyperctl("list", "container").stdout)
        assert row[1:] == ["seen", "seen", "failed", "3"]
        (container,) = json.loads(
            hyperd.hyperctl("inspect", "--type", "container", "seen", check=True).stdout
        )
        assert (container["state"], container["exit_code"]) == ("failed", 3)
        assert container["finished"]
        hyperd.hyperctl("rm", "seen", check=True)

        # Everything above, as events, in order.
        seen = []
        for line in events.stdout:
            seen.append(line.split()[1:4])
            if seen[-1] == ["pod", "remove", "seen"]:
                break
        assert seen == [
            ["pod", "create", "seen"],
            ["pod", "start", "seen"],
            ["container", "start", "seen"],
            ["container", "die", "seen"],
            ["pod", "stop", "seen"],
            ["pod", "remove", "seen"],
        ]
    finally:
        events.kill()
        events.wait()

    # Replayed from a time, until a time: the command ends by itself.
    replay = hyperd.hyperctl(
        "events",
        "--since",
        "1h",
        "--until",
        "0s",
        "--format",
        "{{.Type}} {{.Action}} {{.ExitCode}}",
        check=True,
        timeout=60,
    )
    assert "container die 3\n" in replay.stdout

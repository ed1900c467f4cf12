"""The original's session, replayed against real VMs (issue: the whole workflow)."""

import re

import pytest

from tests.support.daemon import rows

pytestmark = pytest.mark.vm

# A container that stops cleanly on SIGTERM (busybox sh as PID 1 would ignore it).
SERVE = ["sh", "-c", "trap 'exit 0' TERM; echo ready; sleep 1000 & wait"]


def test_the_original_session(hyperd, tmp_path):
    podfile = tmp_path / "podfile.json"
    podfile.write_text(
        '{"id": "from-file", "containers": [{"image": "busybox",'
        ' "command": ["echo", "hello from a pod file"]}]}'
    )
    ran = hyperd.hyperctl("run", "-a", "-p", str(podfile), check=True)
    assert "hello from a pod file" in ran.stdout
    hyperd.hyperctl("rm", "from-file", check=True)

    out = hyperd.hyperctl("run", "-d", "busybox", *SERVE, check=True).stdout
    pod = re.fullmatch(r"POD id is (busybox-\d{10})\nTime to run a POD is \d+ ms\n", out)
    assert pod, out
    pod = pod[1]

    out = hyperd.hyperctl("create", "-c", "-d", pod, "busybox", *SERVE, check=True).stdout
    assert re.fullmatch(r"Container ID is [0-9a-f]{64}\n", out), out
    listing = hyperd.hyperctl("list", "container", check=True).stdout
    assert listing.splitlines()[0].split() == [
        "Container",
        "ID",
        "Name",
        "POD",
        "ID",
        "Status",
        "Exit",
        "Code",
    ]
    states = {row[1]: row[3] for row in rows(listing)}
    assert states.pop(pod) == "running"
    ((second, state),) = states.items()
    assert state == "pending" and re.fullmatch(r"busybox-\d{10}", second)

    out = hyperd.hyperctl("start", "-c", second, check=True).stdout
    assert out == f"Successfully started container {second}\n"
    states = {row[1]: row[3] for row in rows(hyperd.hyperctl("list", "container").stdout)}
    assert states == {pod: "running", second: "running"}

    hyperd.hyperctl("stop", "-c", second, pod, check=True)
    states = {row[1]: row[3] for row in rows(hyperd.hyperctl("list", "container").stdout)}
    assert states == {pod: "succeeded", second: "succeeded"}

    out = hyperd.hyperctl("rm", "-c", second, pod, check=True).stdout
    assert out == (
        f"container {second} is successfully deleted!\ncontainer {pod} is successfully deleted!\n"
    )

    listing = hyperd.hyperctl("list", check=True).stdout
    assert listing.splitlines()[0].split()[:7] == [
        "POD",
        "ID",
        "POD",
        "Name",
        "VM",
        "name",
        "Status",
    ]
    (row,) = rows(listing)
    assert row[0] == row[1] == pod and re.fullmatch(r"vm-[A-Za-z]{10}", row[2])
    assert row[3] == "running"

    out = hyperd.hyperctl("rm", pod, check=True).stdout
    assert out == f"Pod({pod}) is successfully deleted!\n"
    assert rows(hyperd.hyperctl("list").stdout) == []

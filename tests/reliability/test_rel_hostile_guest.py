"""A hostile guest, end to end: a modified guest agent in real VMs, driven by a real hyperd.

Every pod of this module's hyperd boots a guest image whose agent is the
project's own, except that an exec of `hostile MODE ...` makes it misbehave
(tests/support/hostile_agent.py, put into the image by tests/support/hostile_guest.py).
A well-behaved pod (`normal`) runs beside the hostile ones in the same hyperd.

After each misbehaviour hyperd answers `hyperctl list` and the normal pod still
runs and execs; under the floods hyperd's memory stays bounded. What a correct
agent could also send by mistake (unknown messages, stray replies, exits of
processes that are not there) is ignored and the pod keeps running; what breaks
the protocol (oversized or malformed frames, a link cut mid-frame, output beyond
flow control, a guest that stops answering or misanswers a restarted hyperd's
handshake) fails that pod with the reason, shown by `inspect`, and its VM is
stopped. Nothing the guest names as a path is opened or written on the host.
(The same, in milliseconds on fakes: tests/unit/agent/test_agent_client_hostile.py
and tests/unit/engine/test_engine_hostile_guest.py.)

The VMs boot cold (templates off: this guest image is the module's alone), all at
once in the module's fixture: eight boots.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypercontainer.agent.client import BACKLOG_LIMIT, DEFAULT_TIMEOUT
from hypercontainer.pod_session import PROBE_TIMEOUT
from hypercontainer.runtime import ADOPTED_AGENT_TIMEOUT
from hypercontainer.subscribers import PENDING_BYTES

from tests.reliability.support import SLEEPER, finish, tree
from tests.support.daemon import HYPERCTL, Hyperd, qemu_pids, rows, wait_for
from tests.support.hostile_guest import hostile_initrd

pytestmark = pytest.mark.vm

TOKEN = secrets.token_hex(4)
PWNED = f"hc-pwned-{TOKEN}"  # the name every path the guest sends ends in
FLOOD = 1 << 30  # bytes of output the guest pushes at hyperd, acknowledged or not
# hyperd may hold what waits for delivery (BACKLOG_LIMIT: beyond it the guest is cut
# off) and what a client has not read (PENDING_BYTES), plus slack for the
# allocator; a flood kept in memory would be the whole gibibyte.
MEMORY_BOUND = BACKLOG_LIMIT + PENDING_BYTES + (32 << 20)
ODDITIES = 20000  # unknown events in one go
LOG_BOUND = 64 << 10  # bytes of hyperd's log they may cost: about 30 lines are written
ANSWER = 30  # seconds within which hyperd must answer `list` while a guest misbehaves
VIOLATIONS = {
    "oversized": "guest agent misbehaved: frame of 4294967040 bytes exceeds 1048576",
    "malformed": "guest agent misbehaved: control frame is not JSON",
    "midframe": "guest agent misbehaved: connection closed in the middle of a frame",
}
PODS = ["normal", "odd", *VIOLATIONS, "stalled", "mute", "rehello"]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory) -> Iterator[Hyperd]:
    initrd = hostile_initrd(tmp_path_factory.mktemp("guest"))
    hyperd = Hyperd(config=f'[guest]\ninitrd = "{initrd}"\n[qemu]\ntemplate = false\n')
    try:
        hyperd.start()
        hyperd.load_busybox()
        runs = [
            subprocess.Popen(
                [*HYPERCTL, "run", "-d", "--name", name, "busybox", *SLEEPER],
                env=hyperd.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for name in PODS
        ]
        for run in runs:
            out, _ = run.communicate(timeout=600)
            assert run.returncode == 0, out
        yield hyperd
    finally:
        finish(hyperd)


def record(daemon: Hyperd, pod: str) -> dict:
    (found,) = json.loads(daemon.hyperctl("inspect", pod, check=True).stdout)
    return found


def status(daemon: Hyperd) -> dict[str, str]:
    """Pod name -> status, as `hyperctl list` shows it; it must answer promptly."""
    listing = daemon.hyperctl("list", timeout=ANSWER, check=True).stdout
    return {row[1]: row[3] for row in rows(listing)}


def container_of(daemon: Hyperd, pod: str) -> str:
    listing = daemon.hyperctl("list", "container", check=True).stdout
    (cid,) = [row[0] for row in rows(listing) if row[2] == pod]
    return cid


def hostile(daemon: Hyperd, pod: str, *args: str) -> subprocess.CompletedProcess:
    return daemon.hyperctl("exec", pod, "hostile", *args, timeout=300)


def others_are_served(daemon: Hyperd) -> None:
    """hyperd answers, and the well-behaved pod runs and execs."""
    assert status(daemon)["normal"] == "running"
    result = daemon.hyperctl("exec", "normal", "echo", "served", timeout=120)
    assert (result.returncode, result.stdout) == (0, "served\n"), result
    running = [name for name, state in status(daemon).items() if state == "running"]
    assert len(qemu_pids(daemon.run_root)) == len(running), "a VM outlived its pod"


class Memory:
    """hyperd's resident memory: now, and its peak since the last reset."""

    def __init__(self, daemon: Hyperd) -> None:
        assert daemon.process is not None
        self.proc = Path(f"/proc/{daemon.process.pid}")

    def reset_peak(self) -> int:
        (self.proc / "clear_refs").write_text("5")  # VmHWM starts again from VmRSS
        return self.field("VmRSS")

    def field(self, name: str) -> int:
        for line in (self.proc / "status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1]) << 10
        raise AssertionError(f"no {name}")


def failed_with(daemon: Hyperd, pod: str, reason: str) -> None:
    """The pod failed with `reason` (inspect shows it), its container with it, its VM gone."""
    wait_for(lambda: status(daemon)[pod] == "failed", 120, f"pod {pod} to fail")
    pod_record = record(daemon, pod)
    assert pod_record["error"].startswith(reason), pod_record["error"]
    assert pod_record["vm_pid"] is None
    states = {row[2]: row[3] for row in rows(daemon.hyperctl("list", "container").stdout)}
    assert states[pod] == "failed"
    others_are_served(daemon)


@pytest.mark.parametrize("mode", ["unknown", "stray-replies", "ghost-exits"])
def test_oddities_are_ignored_and_the_pod_keeps_running(daemon, mode):
    normal = container_of(daemon, "normal")
    # ghost-exits also names the other pod's container, by id and by name.
    result = hostile(daemon, "odd", mode, normal, "normal", normal[:12])
    assert (result.returncode, result.stdout, result.stderr) == (0, f"hostile {mode} done\n", "")
    assert status(daemon)["odd"] == "running"
    assert daemon.hyperctl("exec", "odd", "echo", "still", check=True).stdout == "still\n"
    states = {row[2]: row[3] for row in rows(daemon.hyperctl("list", "container").stdout)}
    assert states["normal"] == states["odd"] == "running"
    others_are_served(daemon)


def test_a_flood_of_oddities_leaves_hyperds_log_small(daemon):
    """What the guest sends is not a way to fill hyperd's log: ignored messages are
    logged at a limited rate."""
    log = daemon.root / "hyperd.log"
    before = log.stat().st_size
    result = hostile(daemon, "odd", "oddities", str(ODDITIES))
    assert (result.returncode, result.stdout) == (0, "hostile oddities done\n"), result
    grown = log.stat().st_size - before
    assert grown < LOG_BOUND, f"hyperd's log grew by {grown} bytes"
    assert status(daemon)["odd"] == "running"
    others_are_served(daemon)


def test_frames_naming_host_paths_touch_nothing_on_the_host(daemon, tmp_path):
    canary = tmp_path / "canary"
    canary.mkdir()
    places = [canary, Path("/tmp"), Path("/etc"), daemon.root, daemon.state_root]
    odd = record(daemon, "odd")["id"]
    logs = daemon.state_root / "pods" / odd / "logs"
    places.append(logs)

    def host() -> dict[str, object]:
        """Every entry of the canary and hyperd's root, and anything named like an escape."""
        churn = ("state.db", "hyperd.log", "console.log")  # each changes on its own
        daemon_files = tree(daemon.root, lambda p: p.name.startswith(churn))
        return {
            **{f"canary/{name}": entry for name, entry in tree(canary).items()},
            **{f"{daemon.root}/{name}": entry for name, entry in daemon_files.items()},
            **{str(p): "escape" for top in (*places, Path("/")) for p in top.glob(f"*{TOKEN}*")},
        }

    before = host()
    result = hostile(daemon, "odd", "host-paths", *(str(place / PWNED) for place in places))
    assert (result.returncode, result.stdout) == (0, "hostile host-paths done\n"), result
    after = host()
    changed = sorted(name for name in {*before, *after} if before.get(name) != after.get(name))
    assert after == before, f"made or written on the host: {changed}"
    assert status(daemon)["odd"] == "running"
    others_are_served(daemon)


def test_a_flood_of_a_gibibyte_is_passed_on_with_hyperd_bounded(daemon):
    memory = Memory(daemon)
    before = memory.reset_peak()
    command = " ".join([*HYPERCTL, "exec", "odd", "hostile", "flood", str(FLOOD)]) + " | wc -c"
    flood = subprocess.Popen(command, shell=True, env=daemon.env, stdout=subprocess.PIPE, text=True)
    try:
        others_are_served(daemon)  # while the flood goes on (it takes about a minute)
        out, _ = flood.communicate(timeout=900)
    finally:
        if flood.poll() is None:
            flood.kill()
    assert int(out) == FLOOD + len("hostile flood done\n")
    grown = memory.field("VmHWM") - before
    assert grown < MEMORY_BOUND, f"hyperd grew by {grown >> 20} MiB during the flood"
    assert status(daemon)["odd"] == "running"
    others_are_served(daemon)


@pytest.mark.parametrize("mode", list(VIOLATIONS))
def test_a_protocol_violation_fails_only_its_pod(daemon, mode):
    result = hostile(daemon, mode, mode)
    assert (result.returncode, result.stdout) == (1, ""), result
    assert result.stderr == "hyperctl ERROR: guest agent connection closed during exec\n"
    failed_with(daemon, mode, VIOLATIONS[mode])


def test_a_flood_beyond_flow_control_fails_its_pod_with_hyperd_bounded(daemon):
    """The guest ignores acknowledgements while its reader reads nothing: what waits
    for delivery is capped, then the guest is cut off."""
    memory = Memory(daemon)
    before = memory.reset_peak()
    stalled = subprocess.Popen(  # its output is never read: hyperd's deliveries back up
        [*HYPERCTL, "exec", "stalled", "hostile", "flood", str(FLOOD)],
        env=daemon.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        failed_with(daemon, "stalled", "guest agent misbehaved: output beyond flow control")
    finally:
        stalled.kill()
        stalled.communicate()
    grown = memory.field("VmHWM") - before
    assert grown < MEMORY_BOUND, f"hyperd grew by {grown >> 20} MiB during the flood"


def test_a_guest_that_stops_answering_is_failed(daemon):
    """The agent goes quiet in the middle of an exec: the next request times out, a
    ping then too, and the pod fails; the exec waiting on it ends."""
    reason = (
        f"guest agent misbehaved: no answer to signal within {DEFAULT_TIMEOUT:g} s,"
        f" nor to a ping within {PROBE_TIMEOUT:g} s"
    )
    waiting = subprocess.Popen(
        [*HYPERCTL, "exec", "mute", "hostile", "silent"],
        env=daemon.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: "silent from now on" in console(daemon, "mute"), 120, "the guest to go quiet"
        )
        killed = daemon.hyperctl("kill", "-s", "TERM", "mute", timeout=300)
        assert (killed.returncode, killed.stderr) == (
            1,
            f"hyperctl ERROR: guest agent did not answer signal within {DEFAULT_TIMEOUT:g} s\n",
        )
        failed_with(daemon, "mute", reason)
        code, (out, err) = waiting.wait(120), waiting.communicate()
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert (code, out, err) == (1, "", f"hyperctl ERROR: pod mute failed: {reason}\n")


def test_a_restarted_hyperd_is_held_up_little_by_guests_that_misanswer_its_handshake(daemon):
    """The next hyperd's handshake gets no answer from one guest, a malformed one from
    another: it starts anyway (the silent one holds it ADOPTED_AGENT_TIMEOUT; Hyperd.start
    waits 60 s for its socket), adopts the well-behaved pod, and fails those two with
    the reason."""
    for pod, how in (("rehello", "silent"), ("odd", "malformed")):
        armed = hostile(daemon, pod, "rehello", how)
        assert (armed.returncode, armed.stdout) == (0, f"hostile rehello {how} armed\n"), armed
    daemon.stop()
    daemon.start()
    others_are_served(daemon)
    failed_with(daemon, "odd", "not adopted: guest agent misbehaved: malformed handshake")
    failed_with(
        daemon,
        "rehello",
        f"not adopted: guest agent did not answer hello within {ADOPTED_AGENT_TIMEOUT:g} s",
    )


def console(daemon: Hyperd, pod: str) -> str:
    pod_id = record(daemon, pod)["id"]
    try:
        return (daemon.state_root / "pods" / pod_id / "console.log").read_text(errors="replace")
    except FileNotFoundError:
        return ""

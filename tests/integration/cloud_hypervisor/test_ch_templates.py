"""VM templates with Cloud Hypervisor: a template guest snapshotted once its agent listens,
pods restored from per-pod copies of its snapshot (vm.snapshot, vm.restore), against the
stand-in VMM, with real virtiofsd for the shares and a real tap.

What this proves: the driver keeps the API contract for snapshots and restores, puts
each pod's own back-ends into its clone's config.json, never writes the template's
files, and falls back to booting when a restore fails. What it cannot prove (no Cloud
Hypervisor runs here): that a real guest resumes from such a snapshot with new sockets.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import structlog
from hypercontainer.drivers import NetworkAttachment, Share
from hypercontainer.errors import DriverError
from hypercontainer_plugins.hypervisors.cloud_hypervisor import CloudHypervisor
from hypercontainer_plugins.hypervisors.cloud_hypervisor.client import Client
from hypercontainer_plugins.hypervisors.cloud_hypervisor.process import Process
from hypercontainer_plugins.hypervisors.cloud_hypervisor.virtiofs import find_virtiofsd
from hypercontainer_plugins.hypervisors.templates import TEMPLATE_MAC
from test_ch_driver_lifecycle import echo, vm_state

FILES = ("config.json", "state.json", "memory-ranges")
# Templates need virtio-fs shares, and so root and a virtiofsd.
needs_virtiofs = pytest.mark.skipif(
    os.geteuid() != 0 or find_virtiofsd("virtiofsd") is None, reason="needs root and virtiofsd"
)


def digests(directory: Path) -> dict[str, str]:
    return {name: hashlib.sha256((directory / name).read_bytes()).hexdigest() for name in FILES}


def bodies(journal, path: str) -> list[dict]:
    return [json.loads(e["body"]) for e in journal.entries() if e["path"] == path]


@pytest.fixture
def shares(workdir: Path) -> list[Share]:
    layers, pod = workdir / "layers", workdir / "pod-share"
    (layers / "sha256-abc").mkdir(parents=True)
    pod.mkdir()
    return [Share("hc_layers", layers), Share("hc_pod", pod, readonly=False)]


@pytest.fixture
def driver(make_binary, make_config):
    # The template guest's agent is slow to listen: the maker must wait for it.
    binary = make_binary("--agent-after", "3", "--guest-powers-off")
    return CloudHypervisor(make_config(binary, virtiofsd="virtiofsd"))


@needs_virtiofs
@pytest.mark.root
def test_pods_are_restored_from_one_template_made_once(
    driver, make_spec, journal, shares, workdir, processes
):
    first = make_spec("pod-1", memory_mb=64, shares=shares)
    handle = driver.restore(first)
    key = handle["template"]
    template = workdir / "cache" / "templates" / key

    # The template guest: booted, its agent waited for, paused, snapshotted.
    assert journal.paths()[:6] == [
        "/vmm.ping",
        "/vm.create",
        "/vm.boot",
        "/vm.pause",
        "/vm.snapshot",
        "/vmm.ping",
    ]
    (destination,) = bodies(journal, "/vm.snapshot")
    assert destination == {
        "destination_url": f"file://{template.parent}/{key}.making-{os.getpid()}"
    }
    assert sorted(p.name for p in template.iterdir() if p.is_file()) == sorted(
        [*FILES, "console.log", "hits", "meta.json"]
    )
    assert all((template / name).stat().st_mode & 0o777 == 0o400 for name in FILES)
    saved = json.loads((template / "config.json").read_text())
    assert "net" not in saved and saved["memory"]["shared"] is True
    assert all("/templates/cloud-hypervisor/" in fs["socket"] for fs in saved["fs"])
    before = digests(template)

    # The clone: the template's snapshot with the pod's back-ends, restored and resumed.
    assert journal.paths()[-2:] == ["/vm.restore", "/vm.resume"]
    clone_dir = first.run_dir / "snapshot"
    assert bodies(journal, "/vm.restore") == [
        {
            "source_url": f"file://{clone_dir}",
            "prefault": False,
            "memory_restore_mode": "OnDemand",
            "resume": False,
        }
    ]
    clone = json.loads((clone_dir / "config.json").read_text())
    assert clone["vsock"]["socket"] == str(first.run_dir / "vsock.sock")
    assert clone["serial"]["file"] == str(first.console_log)
    assert clone["console"]["file"] == str(first.run_dir / "hvc0.log")
    assert [(fs["tag"], fs["socket"]) for fs in clone["fs"]] == [
        ("hc_layers", str(first.run_dir / "fs-hc_layers.sock")),
        ("hc_pod", str(first.run_dir / "fs-hc_pod.sock")),
    ]
    assert {k: v for k, v in clone.items() if k not in ("vsock", "serial", "console", "fs")} == {
        k: v for k, v in saved.items() if k not in ("vsock", "serial", "console", "fs")
    }
    for name in ("state.json", "memory-ranges"):  # linked, not copied
        assert (clone_dir / name).stat().st_ino == (template / name).stat().st_ino
    with Client(first.run_dir / "ch-api.sock") as client:
        assert client.vm_info()["config"] == clone
    assert vm_state(handle) == "Running"
    # The clone's agent was listening when the template was saved: it answers at once.
    with driver.connect_agent(handle, timeout=5) as stream:
        assert echo(stream, b"from the clone") == b"from the clone"
    # The template guest and its virtiofsd are gone; the pod's serve the pod's shares.
    assert (
        not (workdir / "run" / "templates" / "cloud-hypervisor").exists()
        or list((workdir / "run" / "templates" / "cloud-hypervisor").iterdir()) == []
    )
    daemons = [
        Process.from_record(json.loads(p.read_text()))
        for p in sorted(first.run_dir.glob("virtiofsd-*.pid"))
    ]
    assert len(daemons) == 2 and all(daemon.alive() for daemon in daemons)

    # A second pod of the shape: no template made again, both clones run side by side.
    second = make_spec("pod-2", memory_mb=64, shares=shares)
    other = driver.restore(second)
    assert other["template"] == key and journal.paths().count("/vm.create") == 1
    assert vm_state(handle) == vm_state(other) == "Running"
    with driver.connect_agent(other, timeout=5) as stream:
        assert echo(stream, b"second") == b"second"
    (listed,) = driver.templates()
    assert listed["key"] == key and listed["hits"] == 2 and listed["memory_mb"] == 64
    assert listed["shares"] == ["hc_layers", "hc_pod"] and listed["accelerator"] == "kvm"
    assert listed["cloud-hypervisor"] == "cloud-hypervisor v0.0.0-standin"

    for spec, vm in ((first, handle), (second, other)):
        driver.stop(vm, timeout=5)
        driver.cleanup(vm)
        assert list(spec.run_dir.iterdir()) == []
    assert processes() == []
    assert digests(template) == before  # no clone wrote the template's files


@needs_virtiofs
@pytest.mark.root
def test_a_clone_takes_the_pods_tap_and_mac(
    make_binary, make_config, make_spec, journal, netns_with_tap, processes
):
    netns, tap = netns_with_tap
    # The VMMs run inside the namespace holding the tap; the stand-in checks it exists.
    binary = make_binary(prefix=f"ip netns exec {netns}")
    driver = CloudHypervisor(make_config(binary, virtiofsd="virtiofsd"))
    attachment = NetworkAttachment(kind="tap", tap=tap, mac="52:54:00:aa:bb:01")
    handle = driver.restore(make_spec(network=attachment))
    (template_config,) = bodies(journal, "/vm.create")
    assert template_config["net"] == [{"id": "net0", "mac": TEMPLATE_MAC}]  # no tap of ours
    with Client(Path(handle["run_dir"]) / "ch-api.sock") as client:
        assert client.vm_info()["config"]["net"] == [
            {"id": "net0", "mac": "52:54:00:aa:bb:01", "tap": tap}
        ]
    driver.stop(handle, timeout=0.1)
    driver.cleanup(handle)
    assert processes() == []


@needs_virtiofs
@pytest.mark.root
def test_a_template_whose_first_clone_fails_is_given_up(
    make_binary, make_config, make_spec, journal, shares, processes
):
    # OnDemand restores need a userfaultfd: where the VMM may not make one, none works.
    config = make_config(make_binary("--no-userfaultfd"), virtiofsd="virtiofsd")
    driver = CloudHypervisor(config)
    spec = make_spec(shares=shares)
    with pytest.raises(DriverError, match="userfaultfd"):
        driver.restore(spec)
    assert list(spec.run_dir.iterdir()) == [] and processes() == []
    assert driver.templates() == []  # dropped
    # The next pod of the shape boots (None: the caller starts it), and no template is
    # made again in this daemon: it would fail every clone the same way.
    assert driver.restore(make_spec("pod-2", shares=shares)) is None
    assert journal.paths().count("/vm.create") == 1


@needs_virtiofs
@pytest.mark.root
def test_a_template_that_cannot_be_made_is_tried_once(
    make_binary, make_config, make_spec, journal, workdir, processes
):
    binary = make_binary("--agent-after", "1000000")  # its agent never listens
    driver = CloudHypervisor(
        make_config(binary, virtiofsd="virtiofsd", HYPERCONTAINER_GUEST__BOOT_TIMEOUT="1")
    )
    with structlog.testing.capture_logs() as logs:
        assert driver.restore(make_spec()) is None
        assert driver.restore(make_spec("pod-2")) is None
    assert journal.paths().count("/vm.create") == 1 and "/vm.snapshot" not in journal.paths()
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
        "pods of this shape boot cold"
    ]
    assert list((workdir / "cache" / "templates").iterdir()) == []
    assert list((workdir / "run" / "templates" / "cloud-hypervisor").iterdir()) == []
    assert processes() == []


def test_templates_off_or_disk_image_shares_mean_booting(
    make_binary, make_config, make_spec, journal
):
    off = CloudHypervisor(
        make_config(
            make_binary(), virtiofsd="virtiofsd", HYPERCONTAINER_CLOUD_HYPERVISOR__TEMPLATE="false"
        )
    )
    assert off.restore(make_spec()) is None
    assert off.describe()["templates"] == "off (template in [cloud-hypervisor])"
    disks = CloudHypervisor(make_config(make_binary(), virtiofsd="/nonexistent/virtiofsd"))
    assert disks.restore(make_spec()) is None
    assert disks.describe()["templates"].startswith("off: shares are disk images")
    assert journal.entries() == []


def test_a_killed_makers_template_guest_is_stopped_when_the_daemon_starts(
    make_binary, make_config, workdir, processes
):
    driver = CloudHypervisor(make_config(make_binary()))
    run_dir = workdir / "run" / "templates" / "cloud-hypervisor" / "0123456789ab-999999999"
    run_dir.mkdir(parents=True)
    vmm = Process.spawn(
        [str(make_binary()), "--api-socket", f"path={run_dir / 'ch-api.sock'}"], run_dir / "vmm.log"
    )
    (run_dir / "vmm.pid").write_text(json.dumps(vmm.record()))
    assert vmm.alive()
    driver.recover()
    assert not vmm.alive() and not run_dir.exists()
    assert processes() == []

"""The runtime starting pods with the Cloud Hypervisor driver and templates: restored while
the template works, booted when its restore fails, a new template made after that.

The VMM is the stand-in, its guest's agent hypercontainer.testing's FakeGuest (the real
agent server; containers simulated); the shares are served by real virtiofsd. The
runtime, the driver and the store are the product's own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import structlog
from hypercontainer import spec as podspec
from hypercontainer.model import PodState
from hypercontainer.runtime import Runtime, load
from hypercontainer_plugins.hypervisors.cloud_hypervisor.virtiofs import find_virtiofsd

pytestmark = [
    pytest.mark.skipif(
        os.geteuid() != 0 or find_virtiofsd("virtiofsd") is None,
        reason="templates need virtio-fs: root and virtiofsd",
    ),
    pytest.mark.root,
]
FALLBACK = "restoring the VM from its template failed; booting it"


@pytest.fixture
def runtime(make_binary, make_config, boot_files, workdir: Path):
    binary = make_binary("--fake-agent", "--guest-powers-off")
    config = make_config(
        binary,
        virtiofsd="virtiofsd",
        HYPERCONTAINER_NETWORK="isolated",  # the test plugin: no interface
        HYPERCONTAINER_GUEST__KERNEL=str(boot_files[0]),
        HYPERCONTAINER_GUEST__INITRD=str(boot_files[1]),
    )
    runtime = load(config)
    yield runtime
    for pod in runtime.store.pods():
        runtime.remove_pod(pod.id)
    runtime.shutdown()


def run(runtime: Runtime, name: str):
    pod = runtime.run_pod(podspec.PodSpec(id=name))
    assert pod.state == PodState.RUNNING
    return pod


def test_a_broken_template_never_fails_a_pod(runtime, journal, workdir, processes):
    first = run(runtime, "tpl-1")
    key = first.vm["template"]
    assert journal.paths().count("/vm.snapshot") == 1
    runtime.remove_pod(first.id)

    state = workdir / "cache" / "templates" / key / "state.json"
    state.chmod(0o600)
    state.write_text("{not the state of a VM")
    with structlog.testing.capture_logs() as logs:
        second = run(runtime, "tpl-2")
    assert "template" not in second.vm  # booted instead
    restores = [e for e in journal.entries() if e["path"] == "/vm.restore"]
    assert restores[-1]["status"] == 500
    assert journal.paths()[-2:] == ["/vm.create", "/vm.boot"]  # the pod's own VMM booted
    assert [e["event"] for e in logs].count(FALLBACK) == 1
    assert not state.parent.exists()  # dropped: the next pod makes a new one

    third = run(runtime, "tpl-3")
    assert third.vm["template"] == key and journal.paths().count("/vm.snapshot") == 2
    assert json.loads((state.parent / "state.json").read_text())["devices"]
    for pod in (second, third):
        runtime.remove_pod(pod.id)
    assert list((workdir / "run" / "pods").iterdir()) == []
    assert processes() == []

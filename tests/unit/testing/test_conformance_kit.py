"""The conformance kit, run as a plugin author runs it, against plugins that keep their
contract (the fakes, the built-in drivers that need neither root nor a VM, the
out-of-tree example) and against tests/conformance/broken_plugins.py, which must
fail with the rules it breaks named."""

from __future__ import annotations

import re
from importlib.metadata import entry_points

import pytest
from hypercontainer import drivers

from tests.support.kit import dummy_guest, run_kit

BROKEN = "tests.conformance.broken_plugins"


def summary(done) -> str:
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr


def test_plugins_that_keep_their_contracts_pass(tmp_path):
    selections = [
        "hypervisor=hypercontainer.testing:FakeHypervisor",
        "network=user",
        "images=oci",
        "hypervisor=cloud-hypervisor",
    ]
    if "isolated" in drivers.installed("network"):  # tests/plugin_dist, as CI installs it
        selections += ["network=isolated", "hooks=audit", "images=oci-offline"]
    done = run_kit(tmp_path, *selections, config=dummy_guest(tmp_path / "guest"))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert re.fullmatch(r"\d+ passed(, \d+ skipped)? in .*", summary(done)), summary(done)
    # Without a binary and KVM, Cloud Hypervisor's VM checks are skipped, and say why.
    assert "cloud-hypervisor cannot run here" in done.stdout


def test_a_hook_plugin_veto_is_checked_to_leave_no_state(tmp_path):
    if "audit" not in {ep.name for ep in entry_points(group="hypercontainer.hooks")}:
        pytest.skip("tests/plugin_dist is not installed")
    done = run_kit(tmp_path, "hooks=audit", "--hc-pod-label=audit/deny=frozen", "-rA")
    assert done.returncode == 0, done.stdout[-4000:]
    assert (
        "hc-kit: create_pod vetoed: audit: pods labelled audit/deny are refused (frozen)"
        in done.stdout
    )


def test_broken_plugins_fail_naming_each_rule_they_break(tmp_path):
    done = run_kit(
        tmp_path,
        f"network={BROKEN}:BrokenNetwork",
        f"hypervisor={BROKEN}:BrokenHypervisor",
        f"hooks={BROKEN}:misspelt",
        f"hooks={BROKEN}:failing",
        f"hooks={BROKEN}:crashing",
        config=dummy_guest(tmp_path / "guest"),
    )
    assert done.returncode == 1
    broken = set(re.findall(r"^(\w+ rule [A-Z]\d+) \(", done.stdout, re.MULTILINE))
    assert broken == {
        "network rule N1",
        "network rule N2",
        "network rule N3",
        "network rule N4",
        "network rule N6",
        "hypervisor rule H2",
        "hypervisor rule H5",
        "hypervisor rule H9",
        "hook rule K1",
        "hook rule K3",
        "hook rule K4",
        "hook rule K5",
    }
    assert "pod_pre_start listener failed: 'missing'" in done.stdout
    assert "ERROR" not in summary(done)  # every failure is a rule, none a crash of the kit


def test_a_bad_selection_is_a_usage_error(tmp_path):
    done = run_kit(tmp_path, "hypervisor=firecracker")
    assert done.returncode == 4
    assert (
        "--hc-driver hypervisor=firecracker: no such entry point in "
        "hypercontainer.hypervisors" in done.stderr
    )

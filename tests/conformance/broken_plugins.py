"""Plugins that break their contracts on purpose: the conformance kit must fail each of
them and name the rule broken (tests/unit/testing/test_conformance_kit.py)."""

from __future__ import annotations

from pathlib import Path

from hypercontainer.drivers import Network, NetworkAttachment, PortForward
from hypercontainer.errors import UserError
from hypercontainer.hookspecs import hookimpl
from hypercontainer.testing import FakeHypervisor


class BrokenNetwork(Network):
    """N1: an unknown kind; N2: a new tap on every attach; N3: detach once only;
    N6: forwards accepted, then forgotten."""

    name = "broken"

    def __init__(self, config) -> None:
        super().__init__(config)
        self.attached: set[str] = set()
        self.count = 0

    def attach(self, pod_id: str, forwards: list[PortForward]) -> NetworkAttachment:
        self.count += 1
        self.attached.add(pod_id)
        return NetworkAttachment(kind="wire", mac="52:54:00:00:00:01", tap=f"tap{self.count}")

    def detach(self, pod_id: str, attachment: NetworkAttachment) -> None:
        self.attached.remove(pod_id)  # KeyError the second time

    def forwards(self, pod_id: str, attachment: NetworkAttachment) -> list[PortForward]:
        return []


class BrokenHypervisor(FakeHypervisor):
    """H2: a handle that is not JSON; H5: cleanup works once; H9: pause declared, refused."""

    name = "broken"

    def start(self, spec):
        handle = super().start(spec)
        handle["run_dir"] = Path(handle["run_dir"])
        return handle

    def cleanup(self, handle) -> None:
        marker = Path(handle["run_dir"]) / "fake-vm"
        if not marker.exists():
            raise FileNotFoundError(marker)
        super().cleanup(handle)

    def pause(self, handle) -> None:
        raise UserError("this hypervisor never pauses")


class MisspeltHooks:
    """K1, K3: a hook that does not exist."""

    @hookimpl
    def pod_post_strat(self, pod):
        """Never called: there is no such hook."""


class FailingHooks:
    """K4: a post-hook listener that raises."""

    @hookimpl
    def pod_post_create(self, pod):
        raise RuntimeError("the audit log is full")


class CrashingHooks:
    """K5: a pre-hook that crashes instead of vetoing."""

    @hookimpl
    def pod_pre_start(self, pod):
        return pod.spec["missing"]


misspelt, failing, crashing = MisspeltHooks(), FailingHooks(), CrashingHooks()

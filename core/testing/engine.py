"""The real lifecycle engine on fake VMs: a `Runtime` in a directory, in milliseconds.

    engine = Engine(tmp_path)                       # fake hypervisor, `user` network, `oci`
    pod = engine.runtime.run_pod(engine.pod("sleep", "60"))
    engine.host.vm(pod.id).crash()                  # the VM dies under the pod

The network and images drivers, and hook plugins, are real ones given by the
test (`Engine(tmp_path, network=MyNetwork(config))`); only the VM and its guest
are pretend. `restart()` is a daemon restart: a new Runtime on the same state,
adopting the VMs that kept running on the same fake host.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .. import drivers
from .. import spec as podspec
from ..config import Config, GuestConfig
from ..hooks import Hooks
from ..runtime import Runtime
from . import ociarchive
from .fakehypervisor import FakeHost, FakeHypervisor

IMAGE = "hc-tiny"  # the kit's image, loaded into every engine's store


def fake_config(root: Path, **settings: Any) -> Config:
    """A configuration whose every directory is below `root`, booting a dummy guest image."""
    guest = root / "guest"
    guest.mkdir(parents=True, exist_ok=True)
    for name in ("vmlinuz", "initrd.img"):
        (guest / name).touch()
    values: dict[str, Any] = {
        "state_root": root / "state",
        "run_root": root / "run",
        "cache_root": root / "cache",
        "hypervisor": "fake",
        "guest": GuestConfig(
            kernel=guest / "vmlinuz", initrd=guest / "initrd.img", boot_timeout=10.0
        ),
    }
    return Config(**{**values, **settings})


def plugin_name(plugin: object) -> str:
    """A hook plugin's name as `hyperctl info` would list it: its module's, or its class's."""
    return getattr(plugin, "__name__", None) or type(plugin).__name__


class Engine:
    """A Runtime with a FakeHypervisor; drivers and hook plugins given are used as they are."""

    def __init__(
        self,
        root: Path,
        config: Config | None = None,
        network: Callable[[Config], drivers.Network] | drivers.Network | None = None,
        images: Callable[[Config], drivers.Images] | drivers.Images | None = None,
        plugins: Iterable[object] = (),
        host: FakeHost | None = None,
        image: bool = True,
    ) -> None:
        self.root = root
        self.config = config or fake_config(root)
        self.host = host or FakeHost()
        self.plugins = list(plugins)
        self._network = network
        self._images = images
        self.runtime = self._runtime()
        if image:
            archive = ociarchive.write(root / "hc-tiny.tar")
            self.runtime.images.load(archive)

    def _part(self, given, kind: str):
        if given is None:
            return drivers.load(kind, getattr(self.config, kind), self.config)
        return given if isinstance(given, drivers.Driver) else given(self.config)

    def _runtime(self) -> Runtime:
        hooks = Hooks(self.config.disabled_hooks, load_entry_points=False)
        for plugin in self.plugins:
            hooks.register(plugin, plugin_name(plugin))
        self.hypervisor = FakeHypervisor(self.config, self.host)
        return Runtime(
            self.config,
            hooks=hooks,
            hypervisor=self.hypervisor,
            images=self._part(self._images, "images"),
            network=self._part(self._network, "network"),
        )

    def pod(self, *command: str, image: str = IMAGE, **fields: Any) -> podspec.PodSpec:
        """A pod of one container running `command` (the fake guest's programs)."""
        container: dict[str, Any] = {"image": image}
        if command:
            container["command"] = list(command)
        return podspec.PodSpec.model_validate({"containers": [container], **fields})

    def container(self, *command: str, image: str = IMAGE, **fields: Any) -> podspec.Container:
        data: dict[str, Any] = {"image": image, **fields}
        if command:
            data["command"] = list(command)
        return podspec.Container.model_validate(data)

    def restart(self) -> Runtime:
        """hyperd stops (VMs keep running) and a new one adopts them."""
        self.runtime.shutdown()
        self.runtime = self._runtime()
        self.runtime.adopt()
        return self.runtime

    def close(self) -> None:
        """Power off every fake VM this engine's host still runs."""
        self.runtime.shutdown()
        for vm in self.host.running():
            vm.power_off()

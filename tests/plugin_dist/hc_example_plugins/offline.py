"""An images driver: the `oci` store, but pulling only from the registries it allows.

Its table is [oci-offline]: every setting of [oci], and `pull_from` (none by default:
images come from `hyperctl load`).
"""

from __future__ import annotations

from hypercontainer.drivers import ProgressCallback, ResolvedImage
from hypercontainer.errors import UserError
from hypercontainer_plugins.images.driver import OciImages
from hypercontainer_plugins.images.reference import parse
from hypercontainer_plugins.images.settings import OciSettings
from pydantic import Field


class OfflineSettings(OciSettings):
    pull_from: list[str] = Field(default_factory=list)


class OfflineImages(OciImages):
    name = "oci-offline"
    Settings = OfflineSettings
    settings: OfflineSettings

    def pull(self, reference: str, progress: ProgressCallback | None = None) -> ResolvedImage:
        registry = parse(reference.strip(), self.settings.default_registry).registry
        if registry not in self.settings.pull_from:
            raise UserError(
                f"oci-offline: no pulls from {registry}; load the image "
                "with hyperctl load, or allow it in pull_from"
            )
        return super().pull(reference, progress)

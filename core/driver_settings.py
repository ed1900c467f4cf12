"""A driver's settings: the configuration table named after the driver, checked by the
pydantic model the driver declares (`Driver.Settings`), with the core's one-line errors.

    class MyNetwork(Network):
        name = "mynet"

        class Settings(DriverSettings):
            subnet: str = "10.99.0.0/24"

`[mynet] subnet = "..."` in the configuration then reaches `self.settings.subnet`;
`[mynet] subnett = 1` is refused as `config (FILE): mynet.subnett: Extra inputs are
not permitted`, like a mistake in the core's own keys.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import UserError
from .paths import DRIVER_GROUPS

if TYPE_CHECKING:
    from .config import Config


class DriverSettings(BaseModel):
    """Base of every driver's settings: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")


class HypervisorSettings(DriverSettings):
    """What every hypervisor has, for the runtime to use."""

    # Seconds a guest has to power off when its pod stops, before the VMM is forced.
    stop_timeout: float = Field(default=10.0, ge=0, le=3600)


Model = TypeVar("Model", bound=DriverSettings)


def settings_of(config: Config, driver: str, model: type[Model]) -> Model:
    """The settings of `driver` from its table in `config`, checked by `model`."""
    from .config import describe

    try:
        return model.model_validate(config.table(driver))
    except ValidationError as e:
        raise UserError(describe(e, config.source, driver)) from None


def check_tables(config: Config) -> None:
    """Check every driver table of the configuration, selected driver or not, with the
    model of the installed driver it names (hyperd at start-up: a mistake in any table
    is refused at once, not when that driver is first selected)."""
    found = entry_points()
    for table in sorted(config.tables):
        for group in DRIVER_GROUPS:
            for entry in found.select(group=group):
                if entry.name.replace("_", "-") == table:
                    driver = entry.load()
                    settings_of(config, table, getattr(driver, "Settings", DriverSettings))

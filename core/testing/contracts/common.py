"""Checks every kind of driver shares."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ...config import Config
from ...driver_settings import DriverSettings, HypervisorSettings
from ...drivers import Driver, Hypervisor
from ...errors import UserError
from ..rules import broken, check


def check_declarations(cls: Any, kind: type[Driver]) -> None:
    check(
        isinstance(cls, type) and issubclass(cls, kind),
        "D1",
        f"{cls!r} is not a subclass of hypercontainer.drivers.{kind.__name__}",
    )
    check(
        isinstance(getattr(cls, "name", None), str) and cls.name,
        "D1",
        f"{cls.__name__}.name must be a non-empty string",
    )
    for attribute in ("capabilities", "requires"):
        value = getattr(cls, attribute)
        check(
            isinstance(value, frozenset) and all(isinstance(c, str) for c in value),
            "D1",
            f"{cls.__name__}.{attribute} must be a frozenset of strings, not {value!r}",
        )


def one_line(rule: str, error: BaseException) -> None:
    """A user-facing error is one line of text."""
    text = str(error)
    check(text and "\n" not in text, rule, f"the error {text!r} is not one line")


def check_settings(cls: type[Driver], config: Config) -> None:
    """D2: the settings model, its defaults, and unknown keys refused in one line."""
    model = cls.Settings
    base = HypervisorSettings if issubclass(cls, Hypervisor) else DriverSettings
    check(
        isinstance(model, type) and issubclass(model, base),
        "D2",
        f"{cls.__name__}.Settings must subclass hypercontainer.driver_settings."
        f"{base.__name__}, not {model!r}",
    )
    try:
        model()
    except ValidationError as e:
        broken(
            "D2",
            f"a setting has no default, so a configuration without [{cls.name}] "
            f"cannot work: {e.errors()[0]['loc']}",
        )
    try:
        cls(config.with_table(cls.name, kit_no_such_setting=1))
    except UserError as e:
        check(
            f"{cls.name}.kit_no_such_setting" in str(e) and "\n" not in str(e),
            "D2",
            f"an unknown key in [{cls.name}] gave: {e}",
        )
        return
    broken("D2", f"an unknown key in [{cls.name}] was accepted")

"""Checks every kind of driver shares."""

from __future__ import annotations

from ...drivers import Driver
from ..rules import check


def check_declarations(cls: type, kind: type[Driver]) -> None:
    check(isinstance(cls, type) and issubclass(cls, kind), "D1",
          f"{cls!r} is not a subclass of hypercontainer.drivers.{kind.__name__}")
    check(isinstance(getattr(cls, "name", None), str) and cls.name, "D1",
          f"{cls.__name__}.name must be a non-empty string")
    for attribute in ("capabilities", "requires"):
        value = getattr(cls, attribute)
        check(isinstance(value, frozenset) and all(isinstance(c, str) for c in value), "D1",
              f"{cls.__name__}.{attribute} must be a frozenset of strings, not {value!r}")


def one_line(rule: str, error: BaseException) -> None:
    """A user-facing error is one line of text."""
    text = str(error)
    check(text and "\n" not in text, rule, f"the error {text!r} is not one line")

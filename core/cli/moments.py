"""Times the user gives (`--since 10m`) as the absolute UTC times hyperd takes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from .client import CommandError

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])", re.ASCII)


def absolute(text: str, option: str, now: datetime | None = None) -> str:
    """A time, seconds since the epoch, or a duration before `now` (90s, 10m, 2h, 1d),
    as an ISO 8601 UTC time."""
    now = now or datetime.now(UTC)
    value = text.strip()
    if found := DURATION.fullmatch(value):
        seconds = float(found[1]) * UNITS[found[2]]
        moment = now - timedelta(seconds=seconds)
    elif re.fullmatch(r"\d+(?:\.\d+)?", value, re.ASCII):
        moment = _epoch(float(value), text, option)
    else:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise CommandError(
                f"{option} {text!r}: expected a time such as "
                "2026-01-02T15:04:05Z, seconds since the epoch, "
                "or a duration such as 10m"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _epoch(seconds: float, text: str, option: str) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise CommandError(f"{option} {text!r}: not a time") from None

"""Tables laid out as the original hyperctl's: left-aligned, at least 20 wide."""

from __future__ import annotations

from collections.abc import Sequence

MIN_WIDTH = 20
GAP = 3


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [
        max(MIN_WIDTH, max((len(str(r[i])) for r in rows), default=0) + GAP)
        for i in range(len(headers))
    ]
    lines = []
    for row in [headers, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append("".join(cells).rstrip())
    return "\n".join(lines)


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000:
            return f"{value:.3g} {unit}"
        value /= 1000
    return f"{value:.3g} TB"

"""The size of a container's own tmpfs: what the guest has available, less a headroom."""

from __future__ import annotations

import pytest
from hypercontainer.guest.agent.writable import (
    HEADROOM,
    MINIMUM,
    available_memory,
    writable_size,
)

MiB = 1 << 20


def test_the_size_leaves_the_headroom_of_what_is_available() -> None:
    assert writable_size(100 * MiB) == 100 * MiB - HEADROOM


def test_a_guest_short_of_memory_still_gets_the_minimum() -> None:
    assert writable_size(HEADROOM) == MINIMUM
    assert writable_size(0) == MINIMUM


def test_available_memory_is_read_from_meminfo(tmp_path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  81912 kB\nMemFree:  15316 kB\nMemAvailable:  20516 kB\n")
    assert available_memory(str(meminfo)) == 20516 * 1024


def test_meminfo_without_mem_available_is_an_error(tmp_path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  81912 kB\n")
    with pytest.raises(OSError, match="no MemAvailable"):
        available_memory(str(meminfo))

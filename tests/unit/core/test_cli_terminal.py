"""hyperctl's terminal side that needs no daemon: finding the detach keys in typed input."""

import pytest
from hypercontainer.cli.terminal import DETACH_KEYS, _scan


@pytest.mark.parametrize(
    "typed, sent, held, detach",
    [
        (b"ls\r", b"ls\r", b"", False),
        (b"ab\x10\x11cd", b"ab", b"", True),  # what follows the keys is not sent
        (b"ab\x10", b"ab", b"\x10", False),  # maybe the keys' start: held until the next read
        (b"\x10x", b"\x10x", b"", False),  # Ctrl-P alone (shell history) goes through
        (b"\x11", b"\x11", b"", False),
    ],
)
def test_detach_keys_in_typed_input(typed, sent, held, detach):
    assert _scan(typed, DETACH_KEYS) == (sent, held, detach)


def test_detach_keys_split_over_two_reads():
    sent, held, detach = _scan(b"echo\x10", DETACH_KEYS)
    assert (sent, detach) == (b"echo", False)
    assert _scan(held + b"\x11", DETACH_KEYS) == (b"", b"", True)

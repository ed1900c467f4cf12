"""Test-wide settings.

Property tests (hypothesis) replay one fixed sequence of examples by default, so
a run is reproducible: CI fails or passes on the same inputs every time, and a
failure seen once is seen again. `HYPOTHESIS_PROFILE=explore` draws new examples
on every run instead: that is how to hunt for new bugs (docs/reliability.md).
"""

import os

import pytest
from hypothesis import settings

settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


# Nothing left behind: a mount a test made under /tmp (a daemon's templates tmpfs, a
# containerd snapshot, a pod share) and did not undo fails the run, naming it.
_MOUNTS_BEFORE = pytest.StashKey[set[str]]()


def _tmp_mounts() -> set[str]:
    from hypercontainer import mounts

    return set(mounts.mounted_under("/tmp"))


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_MOUNTS_BEFORE] = _tmp_mounts()


def pytest_sessionfinish(session: pytest.Session) -> None:
    left = sorted(_tmp_mounts() - session.config.stash.get(_MOUNTS_BEFORE, set()))
    if left:
        print(f"\nmounts the tests left under /tmp: {', '.join(left)}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

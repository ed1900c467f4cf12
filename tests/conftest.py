"""Test-wide settings.

Property tests (hypothesis) replay one fixed sequence of examples by default, so
a run is reproducible: CI fails or passes on the same inputs every time, and a
failure seen once is seen again. `HYPOTHESIS_PROFILE=explore` draws new examples
on every run instead: that is how to hunt for new bugs (docs/reliability.md).
"""

import os

from hypothesis import settings

settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

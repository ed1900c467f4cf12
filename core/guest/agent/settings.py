"""Where the agent keeps its state and how it reaches shares and crun.

The defaults are the guest's; the options exist so that tests can run the very
same agent on the host (a directory standing in for the 9p shares, crun
without cgroup management).
"""

from __future__ import annotations

import os


class Settings:
    def __init__(
        self,
        state_dir: str = "/run/hc",
        shares_dir: str | None = None,
        crun: str = "crun",
        crun_args: list[str] | None = None,
        ninep_options: str = "trans=virtio,version=9p2000.L,msize=262144",
    ) -> None:
        self.state_dir = state_dir
        # None: mount 9p shares by tag; else <shares_dir>/<tag> is bind-mounted instead.
        self.shares_dir = shares_dir
        self.crun = crun
        self.crun_args = crun_args or []  # global options, e.g. --cgroup-manager=disabled
        self.ninep_options = ninep_options

    def path(self, *parts: str) -> str:
        return os.path.join(self.state_dir, *parts)

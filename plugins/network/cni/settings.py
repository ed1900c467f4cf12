"""The cni network's settings: the [cni] table of the configuration."""

from __future__ import annotations

from pathlib import Path

from hypercontainer.driver_settings import DriverSettings


class CniSettings(DriverSettings):
    conf_dir: Path = Path("/etc/cni/net.d")  # network configuration lists (*.conflist)
    bin_dir: str = "/usr/lib/cni:/opt/cni/bin"  # plugin directories, as CNI_PATH: ':'-separated
    # The conflist (by its "name") pods join; the default one is written to conf_dir if absent.
    network: str = "hypercontainer"
    cache_dir: Path = Path("/var/lib/cni")  # libcni's layout: results/<network>-<id>-<ifname>
    host_ip: str = "0.0.0.0"  # where port mappings listen by default: every local address

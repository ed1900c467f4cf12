"""kill -9 of hyperd in the middle of `hyperctl load -i ARCHIVE` and `hyperctl pull`.

A load is killed while its archive is being received and while its layers are
unpacked into the store; a pull (from Debian's docker-registry on loopback,
filled by skopeo) while its blobs download and while its layers are unpacked.
After the next start: the command ended with one line; no half image is
listed; nothing the cut command wrote is left (a staged archive, the store's
work in progress, blobs and layers no image names); and the same command then
works. (Cuts during `run`, `rm` and `stop`: the other test_rel_daemon_killed*.)
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.reliability.support import BULKY, cut_short, entries
from tests.support.daemon import Hyperd
from tests.support.imagebuild import bulky


def staged(daemon: Hyperd) -> bool:
    return any(p.stat().st_size for p in (daemon.state_root / "transfers").glob("*.tar"))


def downloading(daemon: Hyperd) -> bool:
    return any(p.stat().st_size for p in (daemon.state_root / "images" / "tmp").glob("blob-*"))


def unpacking(daemon: Hyperd) -> bool:
    return any((daemon.state_root / "images" / "tmp").glob("layer-*"))


CUTS: dict[str, tuple[str, Callable[[Hyperd], bool]]] = {
    "load, archive being received": ("load", staged),
    "load, layers being unpacked": ("load", unpacking),
    "pull, blobs downloading": ("pull", downloading),
    "pull, layers being unpacked": ("pull", unpacking),
}


@pytest.fixture(scope="module")
def bulky_image():
    # Incompressible data, so that moving and unpacking it take long enough to be cut.
    return bulky(megabytes=96, layers=3)


def arguments(verb: str, request) -> tuple[list[str], str]:
    """The command line of the cut verb, and the reference it stores."""
    if verb == "load":
        return ["load", "-i", str(request.getfixturevalue("bulky_archive"))], BULKY
    reference = f"{request.getfixturevalue('bulky_registry').address}/bulky:1"
    return ["pull", reference], reference


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.registry) if CUTS[name][0] == "pull" else name
        for name in CUTS
    ],
)
def test_a_cut_load_or_pull_leaves_nothing_and_the_next_one_works(busybox_daemon, request, name):
    daemon, store = busybox_daemon, busybox_daemon.state_root / "images"
    verb, point = CUTS[name]
    args, reference = arguments(verb, request)
    before = {part: entries(store / part) for part in ("blobs", "layers")}
    cut = cut_short(daemon, args, point)

    assert cut.returncode == 1 and len(cut.stderr.splitlines()) == 1, cut
    assert cut.stderr.startswith("hyperctl ERROR: "), cut
    assert "bulky" not in daemon.hyperctl("images", check=True).stdout
    assert entries(daemon.state_root / "transfers") == set()
    assert entries(store / "tmp") == set()
    assert {part: entries(store / part) for part in before} == before

    daemon.hyperctl(*args, check=True)
    assert "bulky" in daemon.hyperctl("images", check=True).stdout
    daemon.hyperctl("rmi", reference, check=True)
    assert {part: entries(store / part) for part in before} == before

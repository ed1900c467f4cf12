"""The image cache: reused when nothing changed, rebuilt once when an input did."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from hypercontainer.errors import UserError
from hypercontainer.guest import image
from hypercontainer.guest.image import GuestImage, cache_key, ensure_image

VERSIONS = {"linux-image-6.1.0-1-amd64": "6.1.1-1", "crun": "1.8"}


def test_a_second_call_reuses_the_image(config, guest_image: GuestImage) -> None:
    events: list[dict] = []
    again = ensure_image(config, progress=events.append)
    assert (again.kernel, again.initrd) == (guest_image.kernel, guest_image.initrd)
    assert events == []  # nothing downloaded, nothing built


def test_every_input_is_in_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    agent = tmp_path / "agent"
    shutil.copytree(image.AGENT_DIR, agent, ignore=shutil.ignore_patterns("__pycache__"))
    base = cache_key(VERSIONS, agent)
    assert cache_key(VERSIONS, agent) == base
    assert cache_key({**VERSIONS, "crun": "1.9"}, agent) != base
    (agent / "protocol.py").write_text((agent / "protocol.py").read_text() + "\n# changed\n")
    changed_agent = cache_key(VERSIONS, agent)
    assert changed_agent != base
    init = tmp_path / "init"
    init.write_text(image.INIT_SCRIPT.read_text() + "\n# changed\n")
    monkeypatch.setattr(image, "INIT_SCRIPT", init)
    assert cache_key(VERSIONS, agent) != changed_agent


def test_a_changed_input_is_rebuilt_once_however_many_ask(
    config, guest_image: GuestImage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = tmp_path / "agent"
    shutil.copytree(image.AGENT_DIR, agent, ignore=shutil.ignore_patterns("__pycache__"))
    (agent / "marker.py").write_text('"""Only here to change the agent."""\n')
    monkeypatch.setattr(image, "AGENT_DIR", agent)

    start = threading.Barrier(2)
    results: dict[int, GuestImage] = {}
    events: dict[int, list[str]] = {0: [], 1: []}

    def build(index: int) -> None:
        start.wait()
        results[index] = ensure_image(
            config, progress=lambda event: events[index].append(event["status"])
        )

    threads = [threading.Thread(target=build, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rebuilt = results[0]
    try:
        assert rebuilt.kernel != guest_image.kernel  # a new image for the new input
        assert (results[1].kernel, results[1].initrd) == (rebuilt.kernel, rebuilt.initrd)
        builders = [i for i in (0, 1) if "downloading guest packages" in events[i]]
        assert len(builders) == 1, events
        assert "waiting for another guest image build" in events[1 - builders[0]], events
        root = config.cache_root / "guest"
        assert not list(root.glob(".build-*"))
        assert guest_image.initrd.is_file()  # the previous image is still there
        assert "marker.py" in _initrd_names(rebuilt)
    finally:
        shutil.rmtree(rebuilt.kernel.parent, ignore_errors=True)


def _initrd_names(built: GuestImage) -> str:
    import gzip

    return gzip.decompress(built.initrd.read_bytes()).decode("latin-1")


def test_configured_kernel_and_initrd_are_used_as_they_are(config, tmp_path: Path) -> None:
    kernel, initrd = tmp_path / "bzImage", tmp_path / "initrd"
    kernel.write_bytes(b"k")
    initrd.write_bytes(b"i")
    guest = config.guest.model_copy(update={"kernel": kernel, "initrd": initrd})
    mine = config.model_copy(update={"guest": guest, "cache_root": tmp_path / "cache"})
    events: list[dict] = []
    chosen = ensure_image(mine, progress=events.append)
    assert (chosen.kernel, chosen.initrd) == (kernel, initrd)
    assert events == [] and not (tmp_path / "cache").exists()


def test_a_configured_kernel_that_is_missing_is_a_user_error(config, tmp_path: Path) -> None:
    guest = config.guest.model_copy(update={"kernel": tmp_path / "nope"})
    with pytest.raises(UserError, match="guest.kernel .* is not a file"):
        ensure_image(config.model_copy(update={"guest": guest}))


@pytest.mark.parametrize(
    ("package", "message"),
    [
        ("-oDir=/tmp", "not a Debian kernel package name"),
        ("busybox-static", "not a Debian kernel package name"),
        ("linux-image-0.0.0-nonexistent-amd64", "not known to apt"),
    ],
)
def test_a_bad_kernel_package_is_a_user_error(config, tmp_path, package, message) -> None:
    guest = config.guest.model_copy(update={"kernel_package": package})
    mine = config.model_copy(update={"guest": guest, "cache_root": tmp_path / "cache"})
    with pytest.raises(UserError, match=message):
        ensure_image(mine)
    assert not list((tmp_path / "cache").rglob("*.json"))

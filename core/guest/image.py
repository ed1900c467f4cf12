"""The guest image: a kernel, an initrd and kernel arguments, built once and cached.

`ensure_image(config)` is what the runtime calls before booting a pod. The
image lives in `<cache_root>/guest/<key>/`, where the key hashes every input:
the exact package versions apt would fetch, the agent's files, /init and the
builder's own code. A matching directory is used as is; otherwise the image is
built in a temporary directory next to it and renamed into place under a file
lock, so concurrent builders never see (or leave) a half-built image.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..drivers import ProgressCallback
from ..errors import UserError
from ..log import get_logger
from . import apt, initrd, kernel, python_runtime

if TYPE_CHECKING:
    from ..config import Config

HERE = Path(__file__).parent
AGENT_DIR = HERE / "agent"
INIT_SCRIPT = HERE / "init"
BUILDER_SOURCES = [
    "image.py",
    "initrd.py",
    "kernel.py",
    "modules.py",
    "elf.py",
    "apt.py",
    "libraries.py",
    "python_runtime.py",
    "cpio.py",
]
PACKAGES = ["busybox-static", "crun", *python_runtime.PACKAGES]
KERNEL_ARGS = [
    "panic=-1",  # with the hypervisor's no-reboot: a guest that panics stops its VM
    "quiet",
    # Boot-time crypto self-tests: 2-4 s under TCG, measured with initcall_debug.
    "cryptomgr.notests",
    "initcall_blacklist=crypto_kdf108_init",
]
KERNEL_FILE = "vmlinux"
INITRD_FILE = "initrd.img"
MANIFEST = "manifest.json"
KEEP_IMAGES = 3  # older ones are deleted after a build

log = get_logger(component="guest-image")


@dataclass
class GuestImage:
    kernel: Path
    initrd: Path
    kernel_args: list[str] = field(default_factory=lambda: list(KERNEL_ARGS))
    manifest: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "kernel": str(self.kernel),
            "initrd": str(self.initrd),
            "kernel_args": " ".join(self.kernel_args),
        }
        if self.initrd.exists():
            info["initrd_bytes"] = self.initrd.stat().st_size
        for key in ("key", "packages", "built_at"):
            if key in self.manifest:
                info[key] = self.manifest[key]
        return info


def ensure_image(config: Config, progress: ProgressCallback | None = None) -> GuestImage:
    """The image to boot, building (once, whatever the concurrency) what is missing."""
    kernel_override, initrd_override = config.guest.kernel, config.guest.initrd
    for name, path in (("kernel", kernel_override), ("initrd", initrd_override)):
        if path is not None and not Path(path).is_file():
            raise UserError(f"guest.{name} {path} is not a file")
    if kernel_override and initrd_override:
        return GuestImage(Path(kernel_override), Path(initrd_override))

    built = _cached_or_built(config, _Progress(progress))
    return GuestImage(
        kernel=Path(kernel_override) if kernel_override else built.kernel,
        initrd=Path(initrd_override) if initrd_override else built.initrd,
        manifest=built.manifest,
    )


class _Progress:
    """Every step is logged; the caller may also want it (e.g. streamed to hyperctl)."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self._callback = callback

    def __call__(self, status: str, **detail: Any) -> None:
        log.info(status, **detail)
        if self._callback is not None:
            self._callback({"id": "guest-image", "status": status, **detail})


# -- the cache key -------------------------------------------------------------


def _versions(config: Config, root: Path) -> dict[str, str]:
    """name -> version of every package, remembered until apt's lists change."""
    remembered = root / "versions.json"
    wanted = {
        "kernel_package": config.guest.kernel_package or "",
        "packages": PACKAGES,
        "lists": apt.lists_fingerprint(),
    }
    try:
        saved = json.loads(remembered.read_text())
        if saved["wanted"] == wanted:
            return saved["versions"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    kernel_name = kernel.package_name(config.guest.kernel_package)
    found = apt.candidates([kernel_name, *PACKAGES])
    versions = {name: found[name].version for name in [kernel_name, *PACKAGES]}
    _write_atomically(remembered, json.dumps({"wanted": wanted, "versions": versions}))
    return versions


def _files_digest(paths: list[Path], names: list[str]) -> str:
    digest = hashlib.sha256()
    for path, name in zip(paths, names, strict=True):
        digest.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def agent_files(agent_dir: Path) -> list[Path]:
    return sorted(
        p
        for p in agent_dir.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )


def cache_key(versions: dict[str, str], agent_dir: Path | None = None) -> str:
    agent_dir = agent_dir or AGENT_DIR
    agent = agent_files(agent_dir)
    builder = [INIT_SCRIPT] + [HERE / name for name in BUILDER_SOURCES]
    digest = hashlib.sha256()
    digest.update(json.dumps(versions, sort_keys=True).encode())
    agent_names = [p.relative_to(agent_dir).as_posix() for p in agent]
    digest.update(_files_digest(agent, agent_names).encode())
    digest.update(_files_digest(builder, [p.name for p in builder]).encode())
    return digest.hexdigest()[:16]


# -- building --------------------------------------------------------------------


@dataclass
class _Built:
    kernel: Path
    initrd: Path
    manifest: dict[str, Any]


def _load(entry: Path) -> _Built | None:
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return _Built(entry / manifest["kernel"], entry / INITRD_FILE, manifest)


def _cached_or_built(config: Config, progress: _Progress) -> _Built:
    root = config.cache_root / "guest"
    root.mkdir(parents=True, exist_ok=True)
    versions = _versions(config, root)
    key = cache_key(versions)
    entry = root / key
    if found := _load(entry):
        return found
    with _locked(root / ".lock", progress):
        if found := _load(entry):  # another builder finished while we waited
            return found
        for stale in root.glob(".build-*"):  # left by a builder that was killed
            shutil.rmtree(stale, ignore_errors=True)
        with tempfile.TemporaryDirectory(prefix=f".build-{key}-", dir=root) as work:
            _build(Path(work), versions, key, progress)
            (Path(work) / "image").rename(entry)
        _prune(root, keep=entry)
    built = _load(entry)
    assert built is not None
    return built


def _prune(root: Path, keep: Path) -> None:
    """Drop all but the newest few images (a VM that started needs its files no more)."""
    images = sorted(
        (p for p in root.iterdir() if p.is_dir() and (p / MANIFEST).exists() and p != keep),
        key=lambda p: (p / MANIFEST).stat().st_mtime,
        reverse=True,
    )
    for old in images[KEEP_IMAGES - 1 :]:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def _locked(path: Path, progress: _Progress) -> Iterator[None]:
    with path.open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress("waiting for another guest image build")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _build(work: Path, versions: dict[str, str], key: str, progress: _Progress) -> None:
    started = time.monotonic()
    packages = [apt.Package(name, version) for name, version in versions.items()]
    kernel_name = next(p.name for p in packages if p.name.startswith("linux-image-"))
    progress("downloading guest packages", packages=versions)
    debs = apt.download(packages, work / "debs")

    progress("unpacking guest packages")
    kernel_tree, userland = work / "kernel", work / "userland"
    apt.extract(debs[kernel_name], kernel_tree)
    for package in packages:
        if package.name != kernel_name:
            apt.extract(debs[package.name], userland)
    shutil.rmtree(work / "debs")

    image = work / "image"
    image.mkdir()
    release = kernel.release(kernel_tree)
    bzimage = kernel.bzimage(kernel_tree, release)
    vmlinux = kernel.unpack_vmlinux(bzimage)
    if vmlinux is None:
        log.warning("kernel has no PVH entry point; booting the compressed image (slower)")
        kernel_file = "vmlinuz"
        shutil.copyfile(bzimage, image / kernel_file)
    else:
        kernel_file = KERNEL_FILE
        (image / kernel_file).write_bytes(vmlinux)

    progress("building guest initrd", kernel=release)
    contents = initrd.build(
        packages=userland,
        kernel_tree=kernel_tree,
        release=release,
        agent_dir=AGENT_DIR,
        init_script=INIT_SCRIPT,
        staging=work / "staging",
        destination=image / INITRD_FILE,
    )
    manifest = {
        "key": key,
        "packages": versions,
        "kernel_release": release,
        "kernel": kernel_file,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **contents,
        "initrd_bytes": (image / INITRD_FILE).stat().st_size,
    }
    # The manifest is written last: a directory without one is not an image.
    (image / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    progress(
        "guest image ready",
        key=key,
        initrd_bytes=manifest["initrd_bytes"],
        seconds=round(time.monotonic() - started, 1),
    )


def _write_atomically(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, prefix=".tmp-") as f:
        f.write(text)
    Path(f.name).replace(path)


def main() -> None:
    """`python -m hypercontainer.guest.image`: build (or find) the image, say where it is."""
    import sys

    from ..config import load
    from ..errors import HyperError
    from ..log import configure

    configure()
    try:
        image = ensure_image(load())
    except HyperError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    for key, value in image.describe().items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()

"""The VM templates on disk: one directory per shape, made once, shared by every clone.

`<cache_root>/templates/<key>/` holds the files its maker said it leaves (QEMU:
`memory` and `state`; Cloud Hypervisor: its snapshot's `config.json`,
`state.json` and `memory-ranges`), read-only from then on, `meta.json` (the
shape and those file names, written last: a directory without it is not a
template) and `hits` (one byte appended per clone, so processes count without a
lock). A template is made in a `<key>.making-<pid>` directory and renamed into
place; concurrent first uses of a shape wait on `<key>.lock`, and the first one
makes it. Every driver keeps its templates here, under one budget (KEEP).

As root the templates directory is a tmpfs of its own: a template's RAM is
then page cache that clones share, never written to a disk.

A template guest runs in `<run_root>/templates/<vmm>/<key>-<maker pid>` while it
is made, so that a daemon starting again finds a killed maker's VM by its name.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypercontainer.drivers import Hypervisor, VMHandle
from hypercontainer.errors import DriverError
from hypercontainer.log import get_logger

from .shape import Shape

if TYPE_CHECKING:
    from hypercontainer.config import Config

KEEP = 8  # templates kept; beyond it the least recently used go
META, HITS = "meta.json", "hits"
TEMPLATE_MAC = "02:00:00:00:00:01"  # the NIC of every template; clones take their own

log = get_logger(component="templates")


@dataclass(frozen=True)
class Template:
    directory: Path
    shape: Shape
    created: float
    files: tuple[str, ...]  # what its maker left, read-only

    @property
    def key(self) -> str:
        return self.directory.name

    def path(self, name: str) -> Path:
        return self.directory / name

    def hits(self) -> int:
        try:
            return (self.directory / HITS).stat().st_size
        except OSError:
            return 0

    def last_used(self) -> float:
        try:
            return (self.directory / HITS).stat().st_mtime
        except OSError:
            return self.created

    def size(self) -> int:
        """Bytes it occupies: the RAM file is sparse, only what the guest touched counts."""
        total = 0
        for path in self.directory.iterdir():
            with contextlib.suppress(OSError):
                total += path.stat().st_blocks * 512
        return total

    def describe(self) -> dict[str, Any]:
        shape = self.shape
        return {
            "key": self.key,
            "vcpus": shape.vcpus,
            "memory_mb": shape.memory_mb,
            "shares": list(shape.shares),
            "network": shape.network,
            "accelerator": shape.accelerator,
            "kernel": shape.kernel,
            "initrd": shape.initrd,
            shape.vmm: shape.vmm_version,
            "size_bytes": self.size(),
            "age_s": round(time.time() - self.created),
            "hits": self.hits(),
        }


RETRY_AFTER = 60.0  # seconds a shape boots cold after its template failed once
RETRY_AFTER_MAX = 3600.0


def retry_after(failures: int) -> float:
    return min(RETRY_AFTER * 2 ** (failures - 1), RETRY_AFTER_MAX)


class TemplateStore:
    """The templates of one driver (`vmm`, as in Shape.vmm) in the shared directory."""

    def __init__(self, root: Path, vmm: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.root = root
        self.vmm = vmm
        self.clock = clock
        # Shapes whose template failed, with how often and when: tried again after a
        # back-off (a kill or a crash may have been once), not at every pod.
        self._failed: dict[str, tuple[int, float]] = {}

    # -- finding and making --------------------------------------------------------

    def find(self, shape: Shape) -> Template | None:
        return self._load(self.root / shape.key)

    def usable(
        self, shape: Shape, make: Callable[[Path], None], files: Sequence[str]
    ) -> Template | None:
        """get(), or None while this shape's template is given up (its pods boot cold):
        after a failure for RETRY_AFTER seconds, doubled at each failure in a row up to
        RETRY_AFTER_MAX; a template made ends the back-off."""
        failures, since = self._failed.get(shape.key, (0, 0.0))
        if failures and self.clock() < since + retry_after(failures):
            return None
        try:
            template = self.get(shape, make, files)
        except DriverError as e:
            self.give_up(shape.key, f"cannot make a template: {e}")
            return None
        self._failed.pop(shape.key, None)
        return template

    def give_up(self, key: str, reason: str) -> None:
        """No template of this shape for a while (its pods boot cold meanwhile)."""
        failures = self._failed.get(key, (0, 0.0))[0] + 1
        self._failed[key] = (failures, self.clock())
        log.warning(
            "pods of this shape boot cold",
            key=key,
            vmm=self.vmm,
            reason=reason,
            retry_in_s=retry_after(failures),
        )

    def get(self, shape: Shape, make: Callable[[Path], None], files: Sequence[str]) -> Template:
        """The template of `shape`, made now by `make(directory)` if there is none.

        `make` must leave `files` in the directory it is given, or raise.
        """
        if (template := self.find(shape)) is not None:
            return template
        self._prepare_root()
        with self._locked(shape.key):
            if (template := self.find(shape)) is not None:  # made while we waited
                return template
            self._prune(keep_for=shape)
            started = time.monotonic()
            work = self.root / f"{shape.key}.making-{os.getpid()}"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(mode=0o700)
            try:
                make(work)
                for name in files:
                    if not (work / name).is_file():
                        raise DriverError(f"making a template left no {name} file")
                    (work / name).chmod(0o400)
                meta = {"shape": shape.to_dict(), "created": time.time(), "files": list(files)}
                (work / META).write_text(json.dumps(meta))
                work.rename(self.root / shape.key)
            except BaseException:
                shutil.rmtree(work, ignore_errors=True)
                raise
            template = self.find(shape)
            assert template is not None
            log.info(
                "template made",
                key=shape.key,
                seconds=round(time.monotonic() - started, 2),
                size_bytes=template.size(),
            )
            return template

    def hit(self, template: Template) -> None:
        with contextlib.suppress(OSError), open(template.directory / HITS, "ab") as hits:
            hits.write(b".")

    def discard(self, key: str) -> None:
        """Drop a template that failed a clone; the next start of its shape makes a new
        one. Running clones keep what they hold of it (a mapping of its memory, a link)."""
        directory = self.root / key
        if not directory.is_dir():
            return
        doomed = self.root / f"{key}.discarded-{os.getpid()}-{time.monotonic_ns()}"
        with contextlib.suppress(OSError):
            directory.rename(doomed)
            shutil.rmtree(doomed, ignore_errors=True)
            log.warning("template discarded", key=key)

    def list(self) -> list[Template]:
        """This driver's templates."""
        return [template for template in self._all() if template.shape.vmm == self.vmm]

    def _all(self) -> builtins.list[Template]:
        if not self.root.is_dir():
            return []
        found = (self._load(entry) for entry in sorted(self.root.iterdir()))
        return [template for template in found if template is not None]

    # -- housekeeping --------------------------------------------------------------

    def _load(self, directory: Path) -> Template | None:
        try:
            meta = json.loads((directory / META).read_text())
            return Template(
                directory,
                Shape.from_dict(meta["shape"]),
                float(meta["created"]),
                tuple(meta["files"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _prune(self, keep_for: Shape) -> None:
        """Remove what is stale: templates whose VMM, kernel or initrd changed, the
        least recently used beyond KEEP (of every driver), the leftovers of killed
        makers, and directories that are no template (an older format's)."""
        templates = self._all()
        stale = [t for t in templates if not t.shape.inputs_current()]
        current = sorted((t for t in templates if t not in stale), key=Template.last_used)
        stale += current[: max(0, len(current) - (KEEP - 1))]
        for template in stale:
            if template.key != keep_for.key:
                log.info("removing template", key=template.key)
                self.discard(template.key)
        self.remove_leftovers()

    def remove_leftovers(self) -> None:
        """Remove what no template is: directories of makers that died (a killed one's
        holds its guest's RAM, in the tmpfs), of discards cut short, and of an older
        format."""
        for entry in self.root.iterdir() if self.root.is_dir() else ():
            owner = entry.name.split(".making-")[-1] if ".making-" in entry.name else None
            # Looked at now, not in `templates`: another shape's may have been renamed in since.
            unreadable = "." not in entry.name and self._load(entry) is None
            leftover = ".discarded-" in entry.name or (owner and not _alive(owner)) or unreadable
            if leftover and entry.is_dir():
                log.info("removing the leftover of a template", path=str(entry))
                shutil.rmtree(entry, ignore_errors=True)

    def _prepare_root(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        if os.geteuid() != 0 or _filesystem_type(self.root) == "tmpfs":
            return
        with self._locked("mount"):
            if _filesystem_type(self.root) == "tmpfs":
                return
            done = subprocess.run(
                [
                    "mount",
                    "-t",
                    "tmpfs",
                    "-o",
                    "mode=0700,nosuid,nodev",
                    "hc-templates",
                    str(self.root),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:  # templates then live on the disk: slower, still right
                log.warning(
                    "cannot mount a tmpfs for templates",
                    path=str(self.root),
                    error=done.stderr.strip(),
                )

    @contextlib.contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        # Lock files live beside the templates directory, not in it: mounting a tmpfs
        # over it must not hide a lock someone holds.
        path = self.root.parent / f".templates-{name}.lock"
        with open(path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield


class TemplatingHypervisor(Hypervisor):
    """A hypervisor driver keeping templates here: what it shares with every other."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.template_store = TemplateStore(config.cache_root / "templates", self.name)

    def discard_template(self, handle: VMHandle) -> None:
        if handle.get("template"):
            self.template_store.discard(str(handle["template"]))

    def templates(self) -> list[dict[str, Any]]:
        return [template.describe() for template in self.template_store.list()]

    def recover(self) -> None:
        """Stop the template guests of makers that died before they saved them, and
        remove what those makers left in the templates directory."""
        for run_dir in abandoned_run_dirs(self.config.run_root, self.name):
            self.reap(run_dir)
            shutil.rmtree(run_dir, ignore_errors=True)
        self.template_store.remove_leftovers()


def maker_run_dir(run_root: Path, vmm: str, key: str) -> Path:
    """Where a template guest of driver `vmm` runs while this process makes it."""
    return run_root / "templates" / vmm / f"{key[:12]}-{os.getpid()}"


def abandoned_run_dirs(run_root: Path, vmm: str) -> list[Path]:
    """The run directories of `vmm`'s template guests whose makers died before saving
    them."""
    runs = run_root / "templates" / vmm
    found = sorted(runs.iterdir()) if runs.is_dir() else []
    return [run_dir for run_dir in found if not _alive(run_dir.name.rpartition("-")[2])]


def _alive(pid: str) -> bool:
    return pid.isdigit() and Path(f"/proc/{pid}").exists()


def _filesystem_type(path: Path) -> str:
    """The type of the filesystem `path` is on, from the longest matching mount point."""
    best, kind = "", ""
    target = os.path.realpath(path)
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            point = fields[1].replace("\\040", " ")
            inside = target == point or target.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, kind = point, fields[2]
    return kind

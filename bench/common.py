"""What the benchmarks share: a private hyperd on a pinned guest image, statistics,
the JSON results and the sections of docs/benchmarks.md.

Nothing here is a test: bench/ lies outside pytest's testpaths and no file in it
is named test_*.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.support: the private daemon helper

from hypercontainer.log import configure  # noqa: E402

# Before any module binds its logger: the driver's and image builder's info
# lines would drown the figures.
configure("warning")

from hypercontainer.config import load  # noqa: E402
from hypercontainer.guest.image import GuestImage, ensure_image  # noqa: E402

from tests.support.daemon import Hyperd, rows  # noqa: E402
from tests.support.daemon import qemu_pids as qemu_pids  # noqa: E402 - for the scripts

RESULTS = REPO / "bench/results"
DOCS = REPO / "docs/benchmarks.md"
# Runs until stopped and stops at once on SIGTERM (a bare `sh` as PID 1 ignores it).
SERVE = ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
POD_ID = re.compile(r"POD id is (\S+)")


# -- processes -------------------------------------------------------------------


def hyperctl_command() -> list[str]:
    """The installed `hyperctl` beside this interpreter, as a user runs it (not a
    pyenv-style shim, whose own start-up would be measured too)."""
    beside = Path(sys.executable).with_name("hyperctl")
    found = str(beside) if beside.is_file() else shutil.which("hyperctl")
    return [found] if found else [sys.executable, "-m", "hypercontainer.cli.main"]


def timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """Seconds `argv` took, and its output; a failure ends the benchmark."""
    started = time.perf_counter()
    done = subprocess.run(
        argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return elapsed, done.stdout


def run_pod(daemon: Hyperd, memory_mb: int = 128) -> tuple[float, str]:
    """`hyperctl run -d busybox ...`: seconds until it returned (the container then runs,
    which is checked, untimed), and the pod id."""
    return run_pod_at(daemon, memory_mb)[1:]


def run_pod_at(daemon: Hyperd, memory_mb: int = 128) -> tuple[float, float, str]:
    """run_pod(), also returning the wall-clock time it was launched at."""
    launched = time.time()
    elapsed, out = timed(
        [
            *hyperctl_command(),
            "run",
            "-d",
            "--cpu",
            "1",
            "--memory",
            str(memory_mb),
            "busybox",
            *SERVE,
        ],
        daemon.env,
    )
    found = POD_ID.search(out)
    if not found:
        raise SystemExit(f"hyperctl run -d printed no pod id: {out!r}")
    pod = found[1]
    states = [
        row[3]
        for row in rows(daemon.hyperctl("list", "container", check=True).stdout)
        if row[2] == pod
    ]
    if states != ["running"]:
        raise SystemExit(f"pod {pod}: container states {states} after run -d, not running")
    return launched, elapsed, pod


def remove_pods(daemon: Hyperd, pods: list[str]) -> None:
    if pods:
        daemon.hyperctl("rm", *pods, check=True)


# -- a private daemon ----------------------------------------------------------------


def pinned_guest(workdir: Path) -> GuestImage:
    """The machine's guest image, copied aside: the daemon and any bare boot use exactly
    these files, even if another build replaces the cached image meanwhile."""
    print("guest image: finding (or building) the machine's cached image", flush=True)
    image = ensure_image(load())
    kernel, initrd = workdir / image.kernel.name, workdir / image.initrd.name
    shutil.copyfile(image.kernel, kernel)
    shutil.copyfile(image.initrd, initrd)
    return GuestImage(kernel, initrd, list(image.kernel_args), image.manifest)


COLD = "[qemu]\ntemplate = false\n"  # a daemon whose pods always boot


@contextlib.contextmanager
def private_daemon(config: str = "") -> Iterator[tuple[Hyperd, GuestImage]]:
    """A started hyperd with the offline busybox image, on its own state and run roots
    (and `config` added to its configuration); every pod and VM is removed and the
    daemon stopped on the way out, whatever happens (Ctrl-C and SIGTERM included)."""
    with private_daemons(config) as ((daemon, guest),):
        yield daemon, guest


@contextlib.contextmanager
def private_daemons(*configs: str) -> Iterator[list[tuple[Hyperd, GuestImage]]]:
    """One private daemon per configuration, all on the same pinned guest image."""
    signal.signal(signal.SIGTERM, _interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="hcbench-", dir="/tmp"))
    daemons: list[Hyperd] = []
    try:
        guest = pinned_guest(workdir)
        for config in configs:
            daemons.append(
                Hyperd(
                    config=f'[guest]\nkernel = "{guest.kernel}"\n'
                    f'initrd = "{guest.initrd}"\n' + config
                )
            )
            daemons[-1].start()
            daemons[-1].load_busybox()
        yield [(daemon, guest) for daemon in daemons]
    finally:
        for daemon in daemons:
            try:
                daemon.cleanup()
            except AssertionError as e:  # a VM outlived its pod: killed, but say so
                print(f"warning: {e}", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def entry_point(main: Callable[[], object]) -> None:
    """Run a benchmark's main(); Ctrl-C or SIGTERM (cleaned up on the way) ends it quietly."""
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted; every pod, VM and daemon of the benchmark is gone", file=sys.stderr)
        sys.exit(130)


# -- statistics --------------------------------------------------------------------


def summary(samples: list[float]) -> dict[str, float]:
    """Median, quartiles and range."""
    ordered = sorted(samples)
    if len(ordered) > 1:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = q3 = ordered[0]
    return {
        "median": statistics.median(ordered),
        "q1": q1,
        "q3": q3,
        "min": ordered[0],
        "max": ordered[-1],
        "n": len(ordered),
    }


def table(rows_: list[tuple[str, list[float]]], unit: str, digits: int = 2) -> list[str]:
    """A markdown table: one row per measured quantity."""
    lines = [
        f"| | median ({unit}) | IQR ({unit}) | min–max ({unit}) | runs |",
        "|---|---|---|---|---|",
    ]
    for label, samples in rows_:
        s = summary(samples)
        lines.append(
            f"| {label} | {s['median']:.{digits}f} | {s['q1']:.{digits}f}–"
            f"{s['q3']:.{digits}f} | {s['min']:.{digits}f}–{s['max']:.{digits}f} "
            f"| {s['n']} |"
        )
    return lines


# -- where results go ------------------------------------------------------------------


def machine() -> dict[str, object]:
    """What the figures depend on besides the code."""
    qemu = subprocess.run(
        ["qemu-system-x86_64", "--version"], capture_output=True, text=True, check=False
    ).stdout.splitlines()[:1]
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cpus": os.cpu_count(),
        "load_average": round(os.getloadavg()[0], 2),
        "kernel": os.uname().release,
        "qemu": qemu[0] if qemu else "unknown",
        "python": sys.version.split()[0],
    }


def conditions(start: dict[str, object], end: dict[str, object]) -> str:
    """One sentence on when and under what load the figures were taken."""
    return (
        f"{start['date']}, {start['cpus']} CPUs, load average {start['load_average']} "
        f"at the start and {end['load_average']} at the end, {start['qemu']}."
    )


def arguments(doc: str, runs: int) -> argparse.ArgumentParser:
    """The options every benchmark takes."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--runs", type=int, default=runs)
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS,
        help="where the JSON results go (default: bench/results)",
    )
    return parser


def write_results(directory: Path, name: str, data: dict[str, object]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path


def publish(
    args: argparse.Namespace, name: str, result: dict, heading: str, section: str, docs=DOCS
) -> None:
    """A benchmark's end: `result` into <results dir>/<name>.json, `section` printed and,
    with --write-docs, put in `docs` under `heading`."""
    path = write_results(args.results_dir, name, result)
    print(section + f"\n(results: {path})")
    if args.write_docs:
        write_section(heading, section, docs)


def write_section(heading: str, section: str, docs: Path = DOCS) -> None:
    """Replace (or append) the section of `docs` (docs/benchmarks.md) that starts with
    `heading`."""
    text = docs.read_text() if docs.exists() else "# Benchmarks\n"
    section = section.rstrip("\n") + "\n"
    if heading in text:
        start = text.index(heading)
        end = text.find("\n## ", start + len(heading))
        text = text[:start] + section + ("\n" + text[end + 1 :] if end != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    docs.write_text(text)

"""Benchmark: `hyperctl pull` against `podman pull` and `skopeo copy`, for two images.

    python bench/pull.py [--runs 5] [--images random,small-files] [--write-docs]

Starts Debian's docker-registry on 127.0.0.1 and pushes two images to it with
skopeo: `random` (busybox plus 4 layers of incompressible data, 64 MiB) and
`small-files` (busybox plus this machine's /usr/lib/python3, /usr/share/perl and
/usr/share/locale, one layer each: many small files, the shape of real images).
Then, per image and `--runs` times, each tool pulls it cold, in an order that
rotates every run so that the load of a shared machine falls on all alike:

- `hyperctl pull` against a private hyperd (state in a temporary directory),
  the image removed with `hyperctl rmi` between runs (untimed);
- `podman pull` (Debian's podman, storage of its own, overlay driver), the
  image removed with `podman rmi` between runs (untimed);
- `skopeo copy docker://... oci:DIR`, into a fresh directory: blobs only, no
  unpacking (the floor of what a pull costs).

Before each timed pull the page cache is written back and dropped (`sync`, then
`/proc/sys/vm/drop_caches`), so every tool starts from the same cold kernel state:
on ext4 here, the files the previous run's rmi had just deleted made the next
pull's file creation pay in the kernel (2-3x the system time, growing run after
run), and that cost fell unevenly on the tools. `--keep-caches` measures without.
hyperctl and podman both end with every layer unpacked, ready to run. The ratio
hyperctl / podman is taken per run (they ran back to back) and its median is
the figure. Samples go to bench/results/pull.json; `--write-docs` records the
summary in docs/benchmarks.md.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import (
    REPO,
    arguments,
    conditions,
    hyperctl_command,
    machine,
    summary,
    table,
    timed,
    write_results,
    write_section,
)

sys.path.insert(0, str(REPO))

from tests.support import imagebuild
from tests.support.daemon import Hyperd
from tests.support.registry import Registry

HEADING = "## Image pull (bench/pull.py)"
SMALL_FILES_TREES = ["/usr/lib/python3", "/usr/share/perl", "/usr/share/locale"]
IMAGES = {
    "random": lambda: imagebuild.bulky(64, 4),
    "small-files": lambda: imagebuild.host_trees(SMALL_FILES_TREES),
}
TOOLS = ("hyperctl pull", "podman pull", "skopeo copy")


class Podman:
    """Debian's podman with a storage of its own under `workdir`."""

    def __init__(self, workdir: Path) -> None:
        self.base = [
            "podman",
            "--root",
            str(workdir / "root"),
            "--runroot",
            str(workdir / "run"),
            "--storage-driver",
            "overlay",
            "--events-backend",
            "none",
            "--log-level",
            "error",
        ]

    def pull(self, reference: str) -> list[str]:
        return [*self.base, "pull", "--quiet", "--tls-verify=false", reference]

    def remove_all(self) -> None:
        subprocess.run([*self.base, "rmi", "--all", "--force"], check=True, capture_output=True)

    def driver(self) -> str:
        done = subprocess.run(
            [*self.base, "info", "--format", "{{.Store.GraphDriverName}}"],
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout.strip()


def drop_caches() -> None:
    """The page cache, dentries and inodes written back and dropped."""
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def measure_image(
    name: str,
    reference: str,
    runs: int,
    daemon: Hyperd,
    podman: Podman,
    workdir: Path,
    keep_caches: bool,
) -> dict[str, list[float]]:
    hyperctl = [*hyperctl_command(), "--config", str(daemon.config_file)]
    times: dict[str, list[float]] = {tool: [] for tool in TOOLS}
    for run in range(runs):
        order = TOOLS[run % len(TOOLS) :] + TOOLS[: run % len(TOOLS)]
        for tool in order:
            if not keep_caches:
                drop_caches()
            if tool == "hyperctl pull":
                times[tool].append(timed([*hyperctl, "pull", reference], daemon.env)[0])
                timed([*hyperctl, "rmi", reference], daemon.env)
            elif tool == "podman pull":
                times[tool].append(timed(podman.pull(reference))[0])
                podman.remove_all()
            else:
                layout = workdir / f"skopeo-{name}-{run}"
                times[tool].append(
                    timed(
                        [
                            "skopeo",
                            "--insecure-policy",
                            "copy",
                            "--quiet",
                            "--src-tls-verify=false",
                            f"docker://{reference}",
                            f"oci:{layout}:image",
                        ]
                    )[0]
                )
                shutil.rmtree(layout)
        print(
            f"{name} run {run + 1}/{runs}: "
            + ", ".join(f"{tool} {times[tool][-1]:.2f} s" for tool in TOOLS),
            flush=True,
        )
    return times


def measure(names: list[str], runs: int, workdir: Path, keep_caches: bool) -> dict:
    registry = Registry.start(workdir / "registry")
    daemon = Hyperd()
    podman = Podman(workdir / "podman")
    try:
        described = {}
        for name in names:
            print(f"building and pushing the {name} image", flush=True)
            built = IMAGES[name]()
            imagebuild.write_layout(workdir / "layout", {name: built})
            registry.push(workdir / "layout", name, f"bench/{name}:latest")
            top, blobs = built
            described[name] = {
                "layers": len(blobs) - 1,
                "blob_bytes": sum(len(b.data) for b in blobs[1:]),
            }
            shutil.rmtree(workdir / "layout")
        daemon.start()
        start = machine()
        results = {}
        for name in names:
            reference = f"{registry.address}/bench/{name}:latest"
            times = measure_image(name, reference, runs, daemon, podman, workdir, keep_caches)
            ratios = [
                h / p for h, p in zip(times["hyperctl pull"], times["podman pull"], strict=True)
            ]
            results[name] = {**described[name], "times": times, "ratio_to_podman": ratios}
        return {
            "start": start,
            "end": machine(),
            "caches": "kept" if keep_caches else "dropped before each pull",
            "podman_driver": podman.driver(),
            "podman": _version(["podman", "--version"]),
            "skopeo": _version(["skopeo", "--version"]),
            "images": results,
        }
    finally:
        daemon.stop()
        shutil.rmtree(daemon.root, ignore_errors=True)
        registry.stop()


def _version(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()


DESCRIPTION = {
    "random": "busybox + 4 layers of random data",
    "small-files": "busybox + Debian's /usr/lib/python3, /usr/share/perl, /usr/share/locale",
}


def report(result: dict, runs: int) -> str:
    caches = "kept" if result["caches"] == "kept" else "dropped before each pull"
    lines = [
        HEADING,
        "",
        f"Cold pulls from docker-registry on 127.0.0.1, {runs} runs of each tool per image, "
        f"the order rotating every run, the page cache {caches}; "
        f"{conditions(result['start'], result['end'])} "
        f"{result['podman']} ({result['podman_driver']} storage), {result['skopeo']}. "
        "hyperctl and podman end with every layer unpacked, ready to run; skopeo only "
        "stores the blobs. The hyperctl times include its CLI start and the daemon round trip.",
    ]
    for name, image in result["images"].items():
        ratio = summary(image["ratio_to_podman"])
        medians = {tool: statistics.median(samples) for tool, samples in image["times"].items()}
        to_skopeo = medians["hyperctl pull"] / medians["skopeo copy"]
        lines += [
            "",
            f"**{name}** ({DESCRIPTION[name]}): {image['layers']} layers, "
            f"{image['blob_bytes'] / 1e6:.1f} MB of gzip blobs.",
            "",
            *table([(tool, samples) for tool, samples in image["times"].items()], "s"),
            "",
            f"Ratio hyperctl pull / podman pull, per run: **{ratio['median']:.2f}** median "
            f"({ratio['min']:.2f}–{ratio['max']:.2f}); hyperctl / skopeo (medians) "
            f"{to_skopeo:.2f}.",
        ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = arguments(__doc__, runs=5)
    parser.add_argument(
        "--images", default=",".join(IMAGES), help="comma-separated: " + ", ".join(IMAGES)
    )
    parser.add_argument(
        "--keep-caches", action="store_true", help="do not drop the page cache before each pull"
    )
    args = parser.parse_args()
    names = args.images.split(",")
    if set(names) - set(IMAGES):
        parser.error(f"unknown image(s): {', '.join(sorted(set(names) - set(IMAGES)))}")
    for tool in ("podman", "skopeo", "docker-registry"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is not installed (scripts/install --test installs it)")
    with tempfile.TemporaryDirectory(prefix="hcbench-pull-", dir="/tmp") as tmp:
        result = measure(names, args.runs, Path(tmp), args.keep_caches)
    section = report(result, args.runs)
    print(section)
    write_results(args.results_dir, "pull", {"runs": args.runs, **result})
    if args.write_docs:
        write_section(HEADING, section)
    return 0


if __name__ == "__main__":
    os.chdir(REPO)
    sys.exit(main())

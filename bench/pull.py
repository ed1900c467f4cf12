"""Benchmark: `hyperctl pull` against `skopeo copy docker://... oci:...` for one image.

    python bench/pull.py [--megabytes 64] [--layers 4] [--runs 5] [--write-docs]

Starts Debian's docker-registry on 127.0.0.1, pushes an image of busybox plus
`--layers` layers of incompressible data with skopeo, starts a private hyperd
(state in a temporary directory), then times, alternately and `--runs` times
each, a cold `hyperctl pull` (the store emptied with `hyperctl rmi` between
runs, untimed) and a cold `skopeo copy` into a fresh OCI layout. hyperctl
does more: it also unpacks every layer into the store, ready to run.
`--write-docs` records the result in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.support: the registry and image helpers

from tests.support import imagebuild  # noqa: E402
from tests.support.registry import Registry  # noqa: E402

DOCS = REPO / "docs/benchmarks.md"
SECTION = "## Image pull (bench/pull.py)"
DAEMON_TIMEOUT = 30.0


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs)


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    run(command)
    return time.perf_counter() - start


class Daemon:
    """A hyperd of our own, on a temporary state root; stopped by its pid."""

    def __init__(self, workdir: Path) -> None:
        self.config = workdir / "config.toml"
        self.config.write_text(
            f'state_root = "{workdir / "state"}"\nrun_root = "{workdir / "run"}"\n'
            f'cache_root = "{workdir / "cache"}"\n'
        )
        self.socket = workdir / "run/hyperd.sock"
        self.log = workdir / "hyperd.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hypercontainer.api.server", "--config", str(self.config)],
                stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + DAEMON_TIMEOUT
        while not self.socket.exists():  # polling: the daemon has no other readiness signal
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"hyperd did not start; see {self.log}")
            time.sleep(0.05)

    def hyperctl(self, *args: str) -> list[str]:
        return ["hyperctl", "--config", str(self.config), *args]

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def measure(args: argparse.Namespace, workdir: Path) -> dict:
    registry = Registry.start(workdir / "registry")
    daemon = Daemon(workdir)
    try:
        built = imagebuild.bulky(args.megabytes, args.layers)
        imagebuild.write_layout(workdir / "layout", {"bulky": built})
        registry.push(workdir / "layout", "bulky", "bench/bulky:latest")
        reference = f"{registry.address}/bench/bulky:latest"
        blob_bytes = sum(b.descriptor()["size"] for b in built[1])
        daemon.start()
        times: dict[str, list[float]] = {
            "hyperctl pull": [], "skopeo copy": [], "hyperctl version (baseline)": [],
        }
        for i in range(args.runs):
            times["hyperctl version (baseline)"].append(timed(daemon.hyperctl("version")))
            times["hyperctl pull"].append(timed(daemon.hyperctl("pull", reference)))
            run(daemon.hyperctl("rmi", reference))
            layout = workdir / f"skopeo-{i}"
            times["skopeo copy"].append(timed([
                "skopeo", "--insecure-policy", "copy", "--quiet", "--src-tls-verify=false",
                f"docker://{reference}", f"oci:{layout}:bulky",
            ]))
            shutil.rmtree(layout)
        return {"times": times, "blob_bytes": blob_bytes, "layers": args.layers + 1,
                "load": os.getloadavg()[0]}
    finally:
        daemon.stop()
        registry.stop()


def report(result: dict, runs: int) -> str:
    medians = {tool: statistics.median(t) for tool, t in result["times"].items()}
    ratio = medians["hyperctl pull"] / medians["skopeo copy"]
    lines = [
        SECTION,
        "",
        f"Image: {result['layers']} layers, {result['blob_bytes'] / 1e6:.1f} MB of blobs "
        f"(busybox + random data, gzip), from docker-registry on 127.0.0.1. "
        f"{runs} cold runs each, alternating; {os.cpu_count()} CPUs, load average "
        f"{result['load']:.1f} at the end (the machine is shared), {time.strftime('%Y-%m-%d')}.",
        "",
        "| tool | median (s) | min (s) | max (s) |",
        "|---|---|---|---|",
    ]
    for tool, samples in result["times"].items():
        lines.append(f"| {tool} | {medians[tool]:.2f} | {min(samples):.2f} | {max(samples):.2f} |")
    lines += [
        "",
        f"Ratio hyperctl / skopeo (medians): **{ratio:.2f}**. hyperctl also unpacks every "
        "layer into the store (ready to run: a second write of the data and a second "
        "digest, of the uncompressed stream) and includes its CLI start and the daemon "
        "round trip (the baseline row); skopeo only stores the blobs.",
        "",
    ]
    return "\n".join(lines)


def write_docs(section: str) -> None:
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n\n"
    if SECTION in text:
        start = text.index(SECTION)
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + (text[end + 1 :] if end != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOCS.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=64, help="random data in the image")
    parser.add_argument("--layers", type=int, default=4, help="layers of random data")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pull-") as tmp:
        result = measure(args, Path(tmp))
    section = report(result, args.runs)
    print(section)
    if args.write_docs:
        write_docs(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: a templated pod's start against the TCG cache size its clone gets.

    sudo python3 bench/clone_cache.py [--runs 8] [--sizes 32,36,48,64] [--write-docs]

One private hyperd per `qemu.clone_tcg_cache_mb` value, all on the same pinned guest
image; each makes its template in an untimed warm-up. Then `hyperctl run -d --cpu 1
--memory 128 busybox sh -c ...` is timed on each daemon in turn, the order rotating
every run, and the pod removed (untimed). The cache is most of an idle clone's PSS
(bench/pod_memory.py), so this is the other side of that trade.

Results: bench/results/clone_cache.json; `--write-docs` updates docs/benchmarks.md.
"""

from __future__ import annotations

from common import (
    arguments,
    conditions,
    entry_point,
    machine,
    private_daemons,
    publish,
    remove_pods,
    run_pod,
    summary,
    table,
)

HEADING = "## Clone start against its TCG cache (bench/clone_cache.py)"


def measure(runs: int, sizes: list[int]) -> dict[str, list[float]]:
    configs = [f"[qemu]\nclone_tcg_cache_mb = {size}\n" for size in sizes]
    with private_daemons(*configs) as daemons:
        print("warm-up (untimed): each daemon makes its template", flush=True)
        for daemon, _ in daemons:
            remove_pods(daemon, [run_pod(daemon)[1]])
        samples: dict[str, list[float]] = {str(size): [] for size in sizes}
        for index in range(runs):
            shift = index % len(sizes)
            for size, (daemon, _) in (
                list(zip(sizes, daemons, strict=True))[shift:]
                + list(zip(sizes, daemons, strict=True))[:shift]
            ):
                seconds, pod = run_pod(daemon)
                samples[str(size)].append(seconds)
                remove_pods(daemon, [pod])
            print(
                f"run {index + 1}/{runs}: "
                + ", ".join(f"{size} MiB {values[-1]:.2f} s" for size, values in samples.items()),
                flush=True,
            )
        return samples


def report(result: dict) -> str:
    lines = [
        HEADING,
        "",
        "`hyperctl run -d --cpu 1 --memory 128 busybox sh -c '...'` on a template of its "
        "shape, one daemon per `qemu.clone_tcg_cache_mb`, rotating the order; "
        + conditions(result["machine_start"], result["machine_end"]),
        "",
        *table([(f"clone TCG cache {size} MiB", v) for size, v in result["samples"].items()], "s"),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = arguments(__doc__, runs=8)
    parser.add_argument("--sizes", default="32,36,48,64")
    args = parser.parse_args()
    start = machine()
    samples = measure(args.runs, [int(size) for size in args.sizes.split(",")])
    result = {
        "samples": samples,
        "summaries": {size: summary(values) for size, values in samples.items()},
        "machine_start": start,
        "machine_end": machine(),
    }
    publish(args, "clone_cache", result, HEADING, report(result))


if __name__ == "__main__":
    entry_point(main)

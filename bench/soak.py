"""Soak: hundreds of pod lifetimes (run -d, exec, logs, rm) against one hyperd.

    sudo python3 bench/soak.py [--runs 300] [--network user|bridge] [--write-docs]

Each cycle is tests/support/soak.py's (the same as tests/reliability/test_rel_soak.py):
a pod whose container prints a line and waits, `exec` in it, its `logs`, its `rm`.
After every cycle hyperd's open file descriptors, threads and resident memory are
sampled; every `--check-every` cycles (and at the end) the host's footprint is
compared with the one after the first cycle: QEMU processes, run and state
directories, sockets, mounts, store rows and (bridge) links, addresses and nftables
rules of the network namespace the daemon then runs in. A difference ends the soak.

Results: bench/results/soak.json; `--write-docs` updates the soak section of
docs/reliability.md.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from common import (
    REPO,
    arguments,
    conditions,
    entry_point,
    machine,
    private_daemon,
    publish,
    summary,
    table,
)

from tests.support.soak import Holdings, cycle, flat, footprint

RELIABILITY = REPO / "docs/reliability.md"
HEADING = "## Soak (bench/soak.py)"
WARM_UP = 5
NETWORK_FOOTPRINT = "; the namespace's links, addresses and nftables rules"


def soak(runs: int, network: str, check_every: int) -> dict:
    if network == "bridge":
        return _bridged(runs, check_every)
    with private_daemon() as (daemon, _guest):

        def hyperctl(*args):
            return daemon.hyperctl(*args)

        return _cycles(
            hyperctl,
            daemon.process.pid,
            daemon.state_root,
            daemon.run_root,
            None,
            runs,
            check_every,
        )


def _bridged(runs: int, check_every: int) -> dict:
    from tests.integration.network.hc_daemon import Daemon
    from tests.integration.network.hc_netns import NetNs

    ns = NetNs.create("-reliability-soak")
    workdir = Path(tempfile.mkdtemp(prefix="hcsoak-", dir="/tmp"))
    daemon = None
    try:
        daemon = Daemon(workdir, "bridge", ns.name)
        return _cycles(
            lambda *a: daemon._run(a),
            daemon.process.pid,
            workdir / "state",
            daemon.run_root,
            lambda *c: ns.sh(*c),
            runs,
            check_every,
        )
    finally:
        if daemon is not None:
            daemon.stop()
        ns.delete()


def _cycles(
    hyperctl, pid: int, state_root: Path, run_root: Path, in_netns, runs: int, check_every: int
) -> dict:
    cycle(hyperctl, 0)
    baseline = footprint(pid, state_root, run_root, in_netns)
    samples: list[Holdings] = [Holdings.of(pid)]
    steps: dict[str, list[float]] = {}
    checks = 0
    for number in range(1, runs + 1):
        done = cycle(hyperctl, number)
        samples.append(Holdings.of(pid))
        for step, seconds in done.seconds.items():
            steps.setdefault(step, []).append(seconds)
        if number % check_every == 0 or number == runs:
            now = footprint(pid, state_root, run_root, in_netns)
            if now != baseline:
                raise SystemExit(
                    f"after cycle {number} the host holds more than after the "
                    f"first: {now.as_dict()} != {baseline.as_dict()}"
                )
            checks += 1
        if number % 25 == 0:
            s = samples[-1]
            print(
                f"cycle {number}/{runs}: fds {s.fds}, threads {s.threads}, "
                f"rss {s.rss_kib / 1024:.1f} MiB",
                flush=True,
            )
    return {
        "cycles": runs,
        "footprint_checks": checks,
        "footprint": baseline.as_dict(),
        "holdings": [vars(s) for s in samples],
        "growth_after_warm_up": flat(samples[1:], WARM_UP),
        "steps": steps,
    }


def report(result: dict) -> str:
    samples = [Holdings(**h) for h in result["holdings"]]
    first, warm, last = samples[0], samples[WARM_UP], samples[-1]
    growth = result["growth_after_warm_up"]
    lines = [
        HEADING,
        "",
        f"{result['cycles']} cycles of `run -d`, `exec`, `logs`, `rm` against one hyperd "
        f"(network `{result['network']}`); "
        + conditions(result["machine_start"], result["machine_end"]),
        "",
        "| hyperd | after the first pod | after cycle "
        f"{WARM_UP} | after cycle {result['cycles']} | growth after cycle {WARM_UP} |",
        "|---|---|---|---|---|",
        f"| open file descriptors | {first.fds} | {warm.fds} | {last.fds} | {growth['fds']} |",
        f"| threads | {first.threads} | {warm.threads} | {last.threads} | {growth['threads']} |",
        f"| resident memory (MiB) | {first.rss_kib / 1024:.1f} | {warm.rss_kib / 1024:.1f} "
        f"| {last.rss_kib / 1024:.1f} | {growth['rss_mib']:.1f} |",
        "",
        f"The host's footprint (QEMU processes, run and state directories, sockets, mounts, "
        f"store rows{NETWORK_FOOTPRINT if result['network'] == 'bridge' else ''}) "
        f"was compared with the one after the first pod {result['footprint_checks']} times: "
        "equal every time.",
        "",
        "Seconds per step:",
        "",
        *table(list(result["steps"].items()), "s"),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = arguments(__doc__, runs=300)
    parser.add_argument("--network", choices=("user", "bridge"), default="user")
    parser.add_argument(
        "--check-every", type=int, default=10, help="compare the host's footprint every N cycles"
    )
    args = parser.parse_args()
    if args.runs <= WARM_UP:
        parser.error(f"--runs must be more than the {WARM_UP} warm-up cycles")
    start = machine()
    result = soak(args.runs, args.network, args.check_every)
    result.update(
        network=args.network,
        machine_start=start,
        machine_end=machine(),
        summaries={step: summary(v) for step, v in result["steps"].items()},
    )
    publish(args, f"soak_{args.network}", result, HEADING, report(result), RELIABILITY)


if __name__ == "__main__":
    entry_point(main)

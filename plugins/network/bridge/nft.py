"""The bridge's NAT and port mappings: one nftables table of our own.

The table is rendered whole from the leases and mappings in the database and
swapped in by one atomic `nft -f` transaction. Removing a pod's rules is
therefore exact (they are simply no longer rendered), nothing outside the
table is ever touched, and the last pod's removal deletes the table.

Shape: each pod has a chain `pod-<tap>` with its DNAT rules; `prerouting`
(traffic arriving) and `output` (traffic from the host itself) jump to
`portmaps` for packets addressed to this host, which jumps to every pod
chain. `postrouting` masquerades the subnet going out, hairpin traffic (a
pod reaching a mapping on the host) and loopback sources turned into pod
destinations by DNAT. `forward` accepts the bridge's traffic.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field

from hypercontainer.drivers import PortForward
from hypercontainer.errors import DriverError

from ..ports import ANY_HOST_IP

TABLE = "hypercontainer"
FAMILY = "ip"


@dataclass(frozen=True)
class PodRules:
    pod_id: str
    tap: str
    address: str  # the pod's address, no prefix
    forwards: list[PortForward] = field(default_factory=list)

    @property
    def chain(self) -> str:
        return f"pod-{self.tap}"


def render(bridge: str, subnet: str, pods: list[PodRules]) -> str:
    """The nft script that replaces our table with one for exactly these pods."""
    lines = [
        # "add" first makes "delete" safe when the table does not exist yet.
        f"add table {FAMILY} {TABLE}",
        f"delete table {FAMILY} {TABLE}",
        f"table {FAMILY} {TABLE} {{",
        *_chain(
            "prerouting",
            "type nat hook prerouting priority dstnat; policy accept;",
            ["fib daddr type local jump portmaps"],
        ),
        *_chain(
            "output",
            "type nat hook output priority -100; policy accept;",
            ["fib daddr type local jump portmaps"],
        ),
        *_chain("portmaps", "", [f"jump {pod.chain}" for pod in pods]),
    ]
    for pod in pods:
        lines += _chain(pod.chain, f'comment "{_comment(pod.pod_id)}"', _dnat_rules(pod))
    lines += _chain(
        "postrouting",
        "type nat hook postrouting priority srcnat; policy accept;",
        [
            f"ip saddr {subnet} ip daddr != {subnet} masquerade",
            f'oifname "{bridge}" ct status dnat ip saddr {subnet} masquerade',
            f'oifname "{bridge}" ip saddr 127.0.0.0/8 masquerade',
        ],
    )
    lines += _chain(
        "forward",
        "type filter hook forward priority filter; policy accept;",
        [f'iifname "{bridge}" accept', f'oifname "{bridge}" accept'],
    )
    lines.append("}")
    return "\n".join(lines) + "\n"


def _chain(name: str, header: str, rules: list[str]) -> list[str]:
    body = ([f"\t\t{header}"] if header else []) + [f"\t\t{rule}" for rule in rules]
    return [f"\tchain {name} {{", *body, "\t}"]


def _dnat_rules(pod: PodRules) -> list[str]:
    rules = []
    for f in pod.forwards:
        match = "" if f.host_ip == ANY_HOST_IP else f"ip daddr {f.host_ip} "
        target = f"{pod.address}:{f.guest_port}"
        rules.append(f"{match}{f.protocol} dport {f.host_port} dnat to {target}")
    return rules


def _comment(pod_id: str) -> str:
    # Pod ids come from users: keep only characters that cannot end the string.
    return re.sub(r"[^A-Za-z0-9_.:-]", "_", pod_id)[:100]


def nft(*args: str, script: str | None = None) -> str:
    try:
        done = subprocess.run(
            ["nft", *args], input=script, capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise DriverError("the bridge network needs nftables ('nft' is not installed)") from None
    if done.returncode != 0:
        raise DriverError(f"nft {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def apply(script: str) -> None:
    nft("-f", "-", script=script)


def delete_table() -> None:
    apply(f"add table {FAMILY} {TABLE}\ndelete table {FAMILY} {TABLE}\n")


def exists() -> bool:
    return f"table {FAMILY} {TABLE}" in nft("list", "tables").splitlines()

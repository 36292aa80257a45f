"""A shaped link between two network namespaces, for tests and benchmarks on one machine.

Two namespaces joined by a veth pair; each side's egress shaped with tc's token bucket (tbf);
optionally a share of arriving packets dropped with nftables (dropping on input, as a lossy line
does: drops on output are reported to the local sender, which resends at once). Needs root and
iproute2; only the namespaces' own addresses are used.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


class LinkUnavailable(Exception):
    """This machine cannot build the link (not root, no iproute2, no namespaces)."""


@dataclass(frozen=True)
class Link:
    ns_a: str
    host_a: str
    ns_b: str
    host_b: str
    dev_b: str
    rate: str
    loss_percent: int  # 0 when nftables is not installed

    def rx_bytes_b(self) -> int:
        """Bytes that arrived at B's end of the link (what crossed the wire towards B)."""
        path = f"/sys/class/net/{self.dev_b}/statistics/rx_bytes"
        out = subprocess.run(
            ["ip", "netns", "exec", self.ns_b, "cat", path],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
        return int(out.stdout)

    def cut(self) -> None:
        """Drop every packet that arrives at either end, as a line that goes dead does: no
        reset, no error, the sockets just stop moving. ``heal`` brings the line back."""
        _nft(
            (self.ns_a, self.ns_b),
            "add table inet cut; "
            "add chain inet cut inbound { type filter hook input priority -10; }; "
            "add rule inet cut inbound iifname != lo drop",
        )

    def heal(self) -> None:
        _nft((self.ns_a, self.ns_b), "delete table inet cut")

    def small_socket_buffers(self) -> None:
        """TCP buffers of at most 64 KiB in both namespaces: a sender whose peer stops reading
        blocks after a few messages instead of after megabytes."""
        for ns in (self.ns_a, self.ns_b):
            for name in ("tcp_wmem", "tcp_rmem"):
                _run(
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-q",
                    "-w",
                    f"net.ipv4.{name}=4096 16384 65536",
                )


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


def _nft(namespaces: tuple[str, ...], script: str) -> None:
    """The same nftables commands in each namespace."""
    for ns in namespaces:
        _run("ip", "netns", "exec", ns, "nft", script)


@contextmanager
def shaped_link(rate: str = "256kbit", loss_percent: int = 10) -> Iterator[Link]:
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("tc"):
        raise LinkUnavailable("needs root, ip and tc to build network namespaces")
    tag = f"{os.getpid() % 10000}{random.randrange(100)}"
    ns_a, ns_b, subnet = f"pnA{tag}", f"pnB{tag}", f"10.203.{random.randrange(1, 250)}"
    try:
        _run("ip", "netns", "add", ns_a)
        _run("ip", "netns", "add", ns_b)
    except (subprocess.CalledProcessError, OSError) as exc:
        raise LinkUnavailable(f"cannot create network namespaces here: {exc}") from None
    try:
        _run("ip", "link", "add", f"va{tag}", "type", "veth", "peer", "name", f"vb{tag}")
        for ns, dev, host in ((ns_a, f"va{tag}", 1), (ns_b, f"vb{tag}", 2)):
            _run("ip", "link", "set", dev, "netns", ns)
            _run("ip", "-n", ns, "addr", "add", f"{subnet}.{host}/24", "dev", dev)
            _run("ip", "-n", ns, "link", "set", dev, "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
            _run(
                "ip",
                "netns",
                "exec",
                ns,
                "tc",
                "qdisc",
                "add",
                "dev",
                dev,
                "root",
                "tbf",
                "rate",
                rate,
                "burst",
                "16kbit",
                "latency",
                "400ms",
            )
        lossy = loss_percent if shutil.which("nft") else 0
        if lossy:
            _nft(
                (ns_a, ns_b),
                "add table inet loss; "
                "add chain inet loss inbound { type filter hook input priority 0; }; "
                f"add rule inet loss inbound numgen random mod 100 < {lossy} drop",
            )
        yield Link(ns_a, f"{subnet}.1", ns_b, f"{subnet}.2", f"vb{tag}", rate, lossy)
    finally:
        for ns in (ns_a, ns_b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)

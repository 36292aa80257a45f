"""A LAN of network namespaces on one bridge, with packet loss and partitions by nftables.

Each node gets its own namespace and address; a switch namespace holds the bridge. Loss and
partitions drop packets on each node's input (as a lossy line or a cut cable does: the sender
is not told), so TCP sees real loss and real silence. Needs root, iproute2 and nftables; only
the namespaces this module creates are touched, and all of them are deleted on exit.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from .netlink import LinkUnavailable

__all__ = ["Lan", "LinkUnavailable", "lan"]


def _run(*args: str, stdin: str | None = None) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30, input=stdin, text=True)


@dataclass(frozen=True)
class Lan:
    namespaces: tuple[str, ...]
    hosts: tuple[str, ...]  # node i's address, in namespace i
    loss_percent: int

    def partition(self, groups: Sequence[Sequence[int]]) -> None:
        """Each node hears only the nodes of its own group; one group is a healed network."""
        group_of = {node: g for g, members in enumerate(groups) for node in members}
        for node, ns in enumerate(self.namespaces):
            others = [
                self.hosts[j]
                for j in range(len(self.hosts))
                if group_of.get(j, -1) != group_of.get(node, -2)
            ]
            script = "flush set inet mesh cut\n"
            if others:
                script += f"add element inet mesh cut {{ {', '.join(others)} }}\n"
            _run("ip", "netns", "exec", ns, "nft", "-f", "-", stdin=script)

    def heal(self) -> None:
        self.partition([range(len(self.hosts))])


@contextmanager
def lan(nodes: int, loss_percent: int = 0) -> Iterator[Lan]:
    if os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nft")):
        raise LinkUnavailable("needs root, ip and nft to build network namespaces")
    tag = f"{os.getpid() % 1000}{random.randrange(1000)}"
    subnet = f"10.204.{random.randrange(1, 250)}"
    switch = f"pnS{tag}"
    names = tuple(f"pnM{tag}n{i}" for i in range(nodes))
    hosts = tuple(f"{subnet}.{i + 1}" for i in range(nodes))
    made: list[str] = []
    try:
        try:
            _run("ip", "netns", "add", switch)
        except (subprocess.CalledProcessError, OSError) as exc:
            raise LinkUnavailable(f"cannot create network namespaces here: {exc}") from None
        made.append(switch)
        _run("ip", "-n", switch, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", switch, "link", "set", "br0", "up")
        for i, (ns, host) in enumerate(zip(names, hosts, strict=True)):
            _run("ip", "netns", "add", ns)
            made.append(ns)
            node_end, switch_end = f"v{tag}n{i}", f"s{tag}n{i}"
            _run("ip", "link", "add", node_end, "type", "veth", "peer", "name", switch_end)
            _run("ip", "link", "set", node_end, "netns", ns)
            _run("ip", "link", "set", switch_end, "netns", switch)
            _run("ip", "-n", switch, "link", "set", switch_end, "master", "br0")
            _run("ip", "-n", switch, "link", "set", switch_end, "up")
            _run("ip", "-n", ns, "addr", "add", f"{host}/24", "dev", node_end)
            _run("ip", "-n", ns, "link", "set", node_end, "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
            rules = [
                "add table inet mesh",
                "add set inet mesh cut { type ipv4_addr; }",
                "add chain inet mesh inbound { type filter hook input priority 0; }",
                "add rule inet mesh inbound ip saddr @cut drop",
            ]
            if loss_percent:
                rules.append(
                    f"add rule inet mesh inbound iifname {node_end} "
                    f"numgen random mod 100 < {loss_percent} drop"
                )
            _run("ip", "netns", "exec", ns, "nft", "-f", "-", stdin="\n".join(rules) + "\n")
        yield Lan(names, hosts, loss_percent)
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)

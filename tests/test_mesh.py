"""Mesh gossip with real daemons: partitions that heal, peer exchange, bounded dialling.

The partition test runs 20 daemons on loopback, each dialling 3 others through a switchboard
of proxies (tests/proxy.py) whose links can be cut; entries signed on both sides of a cut must
reach every node once it heals, exactly once, with no fork.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bench.mesh import (
    Mesh,
    Replicas,
    listen_ports,
    make_mesh,
    neighbours,
    running,
    sign_entry_at,
    wait,
)
from peernode.home import Home
from peernode.mesh import AddressBook, advertisable, pick_learned
from peernode.peers import add_peer
from protocol import DEFAULT_LIMITS, InvalidBody, node_id
from protocol.kinds import is_dial_address, validate_body

from .nodes import ROOT, NodeProc
from .nodes import wait_for as wait_until
from .proxy import Switchboard

NODES, K, ROUNDS = 20, 3, 3


# --- the profile's addresses are untrusted input ---------------------------------------------


@pytest.mark.parametrize(
    "text", ["192.0.2.10:8470", "perpus.example.id:443", "[2001:db8::1]:8470", "a:1"]
)
def test_dial_addresses_are_host_and_port(text: str) -> None:
    assert is_dial_address(text)


@pytest.mark.parametrize(
    "text",
    [
        "192.0.2.10",
        "host:0",
        "host:65536",
        "host:80/sync",
        "user@host:80",
        "host name:80",
        ":8470",
        "[]:80",
        "host:８０",
        "h" * 300 + ":80",
        8470,
    ],
)
def test_anything_else_is_not_an_address(text: Any) -> None:
    assert not is_dial_address(text)


def test_profile_addresses_are_bounded_and_checked() -> None:
    good = {"name": "Perpustakaan", "addresses": ["192.0.2.1:8470", "lib.example:8470"]}
    validate_body("profile", good, DEFAULT_LIMITS, where="profile")
    for bad, what in (
        ({"name": "P", "addresses": "192.0.2.1:8470"}, "array"),
        ({"name": "P", "addresses": [f"192.0.2.{i}:8470" for i in range(5)]}, "at most 4"),
        ({"name": "P", "addresses": ["192.0.2.1:8470", "evil/path:80"]}, r"addresses\[1\]"),
    ):
        with pytest.raises(InvalidBody, match=what):
            validate_body("profile", bad, DEFAULT_LIMITS, where="profile")


def test_wildcard_listen_addresses_are_not_advertised() -> None:
    assert advertisable("192.0.2.1:8470") and advertisable("127.0.0.1:8470")
    assert not advertisable("0.0.0.0:8470") and not advertisable("[::]:8470")


def test_learned_peers_are_drawn_from_the_eligible_only_and_bounded() -> None:
    addresses = {bytes([i]) * 32: (f"192.0.2.{i}:8470",) for i in range(10)}
    eligible = [bytes([i]) * 32 for i in range(5)]
    for seed in range(20):
        picked = pick_learned(addresses, eligible=eligible, slots=3, rng=random.Random(seed))
        assert len(picked) == 3 and len({k for k, _ in picked}) == 3
        assert all(k in eligible and a in addresses[k] for k, a in picked)
    assert pick_learned(addresses, eligible=eligible, slots=0, rng=random.Random(1)) == []


def test_a_node_publishes_its_address_and_members_read_it(tmp_path: Path) -> None:
    a = NodeProc(tmp_path / "a", "Library A").init()
    home = Home(a.home)
    store = home.open_store()
    try:
        book = AddressBook().refresh(store.conn)
    finally:
        store.conn.close()
    assert book == {home.public_key: (a.address,)}


# --- peer exchange and bounded dialling ---------------------------------------------------------


def _connected(node: NodeProc, other: NodeProc) -> bool:
    other_id = node_id(Home(other.home).public_key)
    return any(
        p["node_id"] == other_id and p["connected"] for p in node.api("/api/status")["peers"]
    )


def _trust(node: NodeProc, other: NodeProc, *, dial: bool = False) -> None:
    """What `peer add NODE_ID [--address]` records, without a CLI process per pair."""
    store = Home(node.home).open_store()
    try:
        add_peer(
            store.conn, Home(other.home).public_key, other.name, other.address if dial else None
        )
    finally:
        store.conn.close()


@pytest.mark.slow
def test_a_member_found_by_peer_exchange_is_dialled_within_max_peers(tmp_path: Path) -> None:
    """C and D know only A's address; B's arrives in B's signed profile, by way of A.

    C has a free slot (max_peers 2) and dials B; D, whose one slot is its pinned peer A, must
    not. X published an address and went away: if C draws it first, it must give the slot up.
    """
    a, b, c, d, x = (
        NodeProc(tmp_path / n.lower(), f"Library {n}").init() for n in ("A", "B", "C", "D", "X")
    )
    for node, slots in ((b, 0), (c, 2), (d, 1)):  # B dials nobody: a B-D link would be D's
        home = Home(node.home)
        home.save_config(replace(home.config, max_peers=slots))
    _trust(a, b, dial=True)
    _trust(a, x, dial=True)
    for node in (b, c, d, x):
        _trust(node, a)
    for node in (c, d):
        _trust(a, node)  # A invited C and D: it knows their keys, not their addresses
        _trust(node, a, dial=True)
        _trust(node, b)
        _trust(node, x)
        _trust(b, node)
        _trust(x, node)
    started: list[NodeProc] = []
    try:
        for node in (a, b, x):
            started.append(node.start())
        wait_until(lambda: _connected(a, x) and _connected(a, b), 20, "A linked to B and X")
        x.stop()
        for node in (c, d):
            started.append(node.start())
        wait_until(lambda: _connected(c, b), 40, "C to dial B, learned from B's profile")
        assert not _connected(d, b), "D has no free slot, yet dialled a learned peer"
        assert _connected(d, a) and _connected(c, a), "pinned peers stay linked"
    finally:
        for node in started:
            node.stop()


# --- partitions --------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_20_node_mesh_converges_after_every_partition_heals(tmp_path: Path) -> None:
    rng = random.Random(7)
    board = Switchboard().start()
    ports = listen_ports(NODES, rng)
    links: dict[tuple[int, int], int] = {}

    def via(i: int, j: int) -> str:
        links[(i, j)], port = board.link(ports[j])
        return f"127.0.0.1:{port}"

    mesh = make_mesh(
        tmp_path / "mesh", [f"127.0.0.1:{p}" for p in ports], K, rng, netns=None, via=via
    )
    linked = neighbours(mesh.dials)
    signed: list[tuple[bytes, str, int]] = []
    try:
        with running(mesh, timeout=90):
            replicas = Replicas(mesh)
            try:
                _settle(mesh, replicas, NODES, 60, "every profile at every node")
                for round_ in range(ROUNDS):
                    side = set(rng.sample(range(NODES), rng.randint(4, NODES - 4)))
                    board.cut(
                        {link for (i, j), link in links.items() if (i in side) != (j in side)}
                    )
                    time.sleep(0.5)
                    writers = sorted(side)[:2]
                    here = [sign_entry_at(mesh.homes[i], f"r{round_}-a{i}") for i in writers]
                    away = sorted(set(range(NODES)) - side)[:2]
                    there = [sign_entry_at(mesh.homes[i], f"r{round_}-b{i}") for i in away]
                    signed += here + there
                    # Inside a side the entries spread (as far as its links reach); across the
                    # cut they cannot.
                    reach = [_component(i, linked, side) for i in writers]
                    wait(
                        _held_by(replicas, list(zip(here, reach, strict=True))),
                        30,
                        f"round {round_}: entries to spread inside their side",
                        mesh,
                    )
                    outside = [i for i in range(NODES) if i not in side]
                    assert all(replicas.arrivals(*here[0])[i] is None for i in outside), (
                        f"round {round_}: an entry crossed a cut link"
                    )
                    board.heal()
                    expected = NODES + len(signed)
                    took = _settle(mesh, replicas, expected, 45, f"convergence after heal {round_}")
                    print(f"round {round_}: converged {took:.1f} s after the heal")
                lost = sum(1 for w in signed if None in replicas.arrivals(*w))
                counts = replicas.scalar("SELECT count(*) FROM entries")
                distinct = replicas.scalar("SELECT count(DISTINCT hash) FROM entries")
                forks = replicas.scalar("SELECT count(*) FROM forks")
                rejected = replicas.scalar("SELECT count(*) FROM rejections")
            finally:
                replicas.close()
    finally:
        board.stop()
    assert lost == 0, f"{lost} entries missing at some node"
    assert counts == [NODES + len(signed)] * NODES, counts
    assert counts == distinct, "an entry was stored twice"
    assert forks == [0] * NODES and rejected == [0] * NODES, (forks, rejected)


def _settle(mesh: Mesh, replicas: Replicas, entries: int, timeout: float, what: str) -> float:
    """Wait until every node holds ``entries`` entries and all hold the same heads."""

    def converged() -> bool:
        if min(replicas.scalar("SELECT count(*) FROM entries")) < entries:
            return False
        return len(set(replicas.heads())) == 1

    return wait(converged, timeout, what, mesh)


def _component(start: int, links: list[set[int]], within: set[int]) -> set[int]:
    """The nodes ``start`` reaches over links that stay inside ``within``."""
    seen, todo = {start}, [start]
    while todo:
        for other in links[todo.pop()] & within:
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return seen


def _held_by(
    replicas: Replicas, entries: list[tuple[tuple[bytes, str, int], set[int]]]
) -> Callable[[], bool]:
    def held() -> bool:
        return all(replicas.arrivals(*w)[i] is not None for w, nodes in entries for i in nodes)

    return held


# --- the benchmark harness cannot rot ----------------------------------------------------------


@pytest.mark.slow
def test_quick_mesh_bench_reaches_all_nodes_once(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.mesh", "--quick", "--work", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("| 10 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    p99_ms = float(cells[4].removesuffix(" ms"))
    redundant = float(cells[7].split()[0])
    assert 0 < p99_ms < 10_000 and redundant <= 2, row

"""LAN discovery: two real daemons on a LAN find each other over mDNS and exchange nothing.

The LAN is two network namespaces this test creates, joined by a veth pair (multicast works
there; it needs root and iproute2, and skips saying so elsewhere). Hostile TXT records are
checked without any network.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peernode.discovery import (
    MAX_NAME_CHARS,
    BadAdvert,
    Plan,
    parse_advert,
    plan,
    txt_properties,
)
from peernode.home import Config, Home
from protocol import PROTOCOL_VERSION, node_id, parse_node_id, public_bytes, short_id

from .nodes import BOOKS, ROOT, NodeProc, wait_for

KEY = public_bytes(Ed25519PrivateKey.generate())
GOOD = txt_properties(KEY, "Perpustakaan Kota Ambon")
LAN_ADDRESSES = ["192.168.1.20"]


# --- TXT records: hostile input ------------------------------------------------------------------


def test_our_txt_record_parses_back() -> None:
    sighting = parse_advert(GOOD, LAN_ADDRESSES, 8470)
    assert sighting.key == KEY and sighting.name == "Perpustakaan Kota Ambon"
    assert sighting.address == "192.168.1.20:8470" and sighting.version == PROTOCOL_VERSION


@pytest.mark.parametrize(
    ("properties", "addresses", "port", "why"),
    [
        ({**GOOD, b"id": None}, LAN_ADDRESSES, 8470, "no node id"),
        ({**GOOD, b"id": b"ABCD"}, LAN_ADDRESSES, 8470, "is not a node id"),
        ({**GOOD, b"id": GOOD[b"id"][:-1] + b"A"}, LAN_ADDRESSES, 8470, "not a node id"),
        ({**GOOD, b"id": b"\xff" * 60}, LAN_ADDRESSES, 8470, "not a node id"),
        ({**GOOD, b"id": b"A" * 5000}, LAN_ADDRESSES, 8470, "5000 bytes"),
        ({**GOOD, b"v": b"%d" % (PROTOCOL_VERSION + 1)}, LAN_ADDRESSES, 8470, "version"),
        ({**GOOD, b"v": b"9" * 5000}, LAN_ADDRESSES, 8470, "not a number"),
        ({**GOOD, b"v": b"-1"}, LAN_ADDRESSES, 8470, "not a number"),
        ({**GOOD, b"v": None}, LAN_ADDRESSES, 8470, "not a number"),
        ({**GOOD, **{b"k%d" % i: b"" for i in range(100)}}, LAN_ADDRESSES, 8470, "keys"),
        (GOOD, [], 8470, "no usable address"),
        (GOOD, ["127.0.0.1", "0.0.0.0", "224.0.0.251", "::1"], 8470, "no usable address"),
        (GOOD, ["fe80::1%2", "not an address"], 8470, "no usable address"),
        (GOOD, LAN_ADDRESSES, None, "not a TCP port"),
        (GOOD, LAN_ADDRESSES, 0, "not a TCP port"),
    ],
)
def test_a_hostile_txt_record_is_refused_with_the_reason(
    properties: dict[bytes, bytes | None], addresses: list[str], port: int | None, why: str
) -> None:
    with pytest.raises(BadAdvert, match=why):
        parse_advert(properties, addresses, port)


def test_a_hostile_name_is_cut_and_cannot_drive_a_terminal() -> None:
    name = "\x1b[2J\x1b]0;owned\x07Perpustakaan" + "x" * 500
    sighting = parse_advert({**GOOD, b"name": name.encode()}, ["10.0.0.7", "::1"], 8470)
    assert len(sighting.name) == MAX_NAME_CHARS and sighting.name.isprintable()
    assert sighting.name.startswith("?[2J?]0;owned?Perpustakaan")
    nameless = parse_advert({**GOOD, b"name": b"\xff\xfe"}, ["fd00::7"], 8470)
    assert nameless.name == "\ufffd\ufffd" and nameless.address == "[fd00::7]:8470"
    flipped = parse_advert({**GOOD, b"name": "Perpus\u202eatok".encode()}, LAN_ADDRESSES, 1)
    assert flipped.name == "Perpus?atok"  # no right-to-left override to disguise a name
    assert parse_advert({**GOOD, b"name": None}, LAN_ADDRESSES, 1).name == short_id(KEY)


def test_what_discovery_does_follows_the_settings() -> None:
    config = Config()
    off = plan(replace(config, discovery="no"), "192.168.1.20:8470")
    assert isinstance(off, str) and "off" in off
    local = plan(config, "127.0.0.1:8470")
    assert isinstance(local, str) and "only this computer can reach" in local
    lan = plan(config, "192.168.1.20:8470")
    assert isinstance(lan, Plan) and lan.interfaces == ["192.168.1.20"]
    assert lan.announce == ("192.168.1.20", 8470)
    wildcard = plan(config, "0.0.0.0:8470")  # never announced: no one can dial 0.0.0.0
    assert isinstance(wildcard, Plan) and wildcard.interfaces is None
    assert wildcard.announce is None and "advertise" in wildcard.note
    behind = plan(replace(config, advertise="perpus.example:9000"), "0.0.0.0:8470")
    assert isinstance(behind, Plan) and behind.announce == ("perpus.example", 9000)


# --- two daemons on one LAN ----------------------------------------------------------------------


@dataclass(frozen=True)
class Lan:
    ns_a: str
    host_a: str
    ns_b: str
    host_b: str


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def lan() -> Iterator[Lan]:
    """Two namespaces joined by a veth pair: the smallest LAN with multicast."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("the LAN test needs root and iproute2 (`ip netns`) to build namespaces")
    tag = f"{os.getpid() % 10000}{random.randrange(100)}"
    ns_a, ns_b, subnet = f"pdA{tag}", f"pdB{tag}", f"10.204.{random.randrange(1, 250)}"
    try:
        _ip("netns", "add", ns_a)
        _ip("netns", "add", ns_b)
    except (subprocess.CalledProcessError, OSError) as exc:
        pytest.skip(f"cannot create network namespaces here: {exc}")
    try:
        _ip("link", "add", f"da{tag}", "type", "veth", "peer", "name", f"db{tag}")
        for ns, dev, host in ((ns_a, f"da{tag}", 1), (ns_b, f"db{tag}", 2)):
            _ip("link", "set", dev, "netns", ns)
            _ip("-n", ns, "addr", "add", f"{subnet}.{host}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield Lan(ns_a, f"{subnet}.1", ns_b, f"{subnet}.2")
    finally:
        for ns in (ns_a, ns_b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


SPOOFER = """
import asyncio, sys
from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf
from peernode.discovery import SERVICE_TYPE, txt_properties

async def main() -> None:
    key, host, port = bytes.fromhex(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    zc = AsyncZeroconf(interfaces=[host], ip_version=IPVersion.V4Only)
    adverts = {
        "spoof": txt_properties(key, "Not Who It Says"),  # another node's id, our address
        "junk": {b"id": b"Z" * 200, b"name": b"junk"},
    }
    for name, properties in adverts.items():
        info = AsyncServiceInfo(
            SERVICE_TYPE, f"{name}.{SERVICE_TYPE}", port=port, properties=properties,
            parsed_addresses=[host],
        )
        await (await zc.async_register_service(info))
    await asyncio.sleep(120)

asyncio.run(main())
"""


def listed(node: NodeProc) -> dict[str, dict[str, Any]]:
    """`peer list --json`, by node id."""
    rows: list[dict[str, Any]] = json.loads(node.cli("peer", "list", "--json").stdout)
    return {row["node_id"]: row for row in rows}


def sightings(node: NodeProc) -> set[str]:
    """Node ids in the node's discovered table, read from the file (cheaper than the CLI)."""
    conn = sqlite3.connect(f"file:{node.home / 'node.db'}?mode=ro", uri=True, timeout=10)
    try:
        return {node_id(key) for (key,) in conn.execute("SELECT key FROM discovered")}
    finally:
        conn.close()


def catalogue(path: Path, records: list[Any]) -> str:
    path.write_text(json.dumps(records), "utf-8")
    return str(path)


@pytest.mark.slow
def test_two_nodes_on_a_lan_find_each_other_and_exchange_nothing_until_invited(
    lan: Lan, tmp_path: Path
) -> None:
    a = NodeProc(tmp_path / "a", "Library A", netns=lan.ns_a, host=lan.host_a)
    b = NodeProc(tmp_path / "b", "Library B", netns=lan.ns_b, host=lan.host_b)
    books = json.loads(BOOKS.read_text("utf-8"))
    # Beside B, a node announces another library's id at B's address, and a junk record.
    other = public_bytes(Ed25519PrivateKey.generate())
    spoof = [sys.executable, "-c", SPOOFER, other.hex(), lan.host_b, str(b.port)]
    spoofer: subprocess.Popen[bytes] | None = None
    try:
        for node, records in ((a, books[:5]), (b, books[5:8])):
            node.init()
            node.cli("catalog", "import", catalogue(tmp_path / f"{node.name}.json", records))
        a_id, b_id, other_id = Home(a.home).node_id, Home(b.home).node_id, node_id(other)
        started = time.monotonic()
        spoofer = subprocess.Popen(
            ["ip", "netns", "exec", lan.ns_b, *spoof],
            stdout=subprocess.DEVNULL,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        a.start()
        b.start()
        wait_for(lambda: {b_id, other_id} <= sightings(a), 20, "A to see B on the LAN")
        wait_for(lambda: a_id in sightings(b), 20, "B to see A on the LAN")
        found_s = time.monotonic() - started

        seen = listed(a)
        assert set(seen) == {b_id, other_id}
        assert not any(row["peer"] or row["connected"] for row in seen.values())
        assert (seen[b_id]["name"], seen[b_id]["address"]) == ("Library B", b.address)
        assert seen[other_id]["address"] == b.address  # what it claims; nothing checked yet
        assert listed(b)[a_id]["peer"] is False
        text = a.cli("peer", "list").stdout
        assert "No peers yet" in text and "Seen on this network, not a peer" in text
        assert b_id in text and other_id in text
        assert a.status()["discovered"] == 2
        doctor = a.cli("doctor", check=False).stdout
        assert f"it announces this node as {a.address}, and it saw 2 other nodes" in doctor
        # Seen is not trusted: no session, no records either way.
        assert (a.records(), b.records()) == (5, 3)
        assert "connected to" not in a.log() + b.log()
        # The junk record is dropped, logged at debug with where it came from.
        junk = "ignoring the announcement 'junk."
        wait_for(lambda: junk in a.log(), 10, "A to log the junk announcement")
        assert lan.host_b in next(line for line in a.log().splitlines() if junk in line)

        # Admitting the spoofed id takes the announced address, but the node there must prove
        # the key, and B cannot.
        added = a.cli("peer", "add", other_id).stdout
        assert f"Using the address it announced on this network: {b.address}" in added
        wanted = f"expected {short_id(other)} but {short_id(parse_node_id(b_id))} answered"
        wait_for(lambda: wanted in a.log(), 20, "A to refuse B posing as another node")
        assert (a.records(), b.records()) == (5, 3)

        # Invited, they sync.
        code = a.cli("peer", "invite").stdout.strip().splitlines()[-1]
        b.cli("peer", "join", code)
        wait_for(lambda: (a.records(), b.records()) == (8, 8), 30, "A and B to sync")
        status = a.status()
        assert status["rejected_by_reason"].get("auth", 0) >= 1  # the spoof, counted
        assert status["discovered"] == 0  # B is a peer now, and the spoof was added as one
    finally:
        if spoofer is not None:
            spoofer.kill()
            spoofer.wait(timeout=10)
        b.stop()
        a.stop()
    print(f"\nfound each other over mDNS {found_s:.1f} s after starting")
